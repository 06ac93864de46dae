"""Attention kernel choice and GPU kernels (marker ``gpu``; skipped without CUDA, and per test
without flash-attn / liger-kernel, naming the package).

- ``model.attn_implementation: auto`` picks flash_attention_2 on a GPU with half-precision
  weights when flash-attn is installed, else transformers' sdpa; float32 weights and
  ``LMFORGE_NO_FLASH_ATTENTION=1`` keep sdpa; asking for flash_attention_2 without the package is
  a ModelError naming it.
- flash-attention 2 and sdpa compute the same loss (bf16 tolerance): on a right-padded batch, on
  packed rows (flash's varlen path from the collator's cu_seq_lens, sdpa's block mask from the
  position ids) against every example run alone, and through a few steps of the sft and pt
  (packed) stages.
- Liger kernels are on for sft/pt when liger-kernel is installed (patched into the model) and
  the losses match the plain path (``train.extra.use_liger_kernel: false``) within tolerance.
"""

from __future__ import annotations

import pytest

from tests.gpu.gpu_runs import (GPU, assert_close_losses, installed, losses, needs, needs_flash,
                                needs_native_bf16, run_stage, skip_if, stage_tree)

pytestmark = GPU

DEVICE = "cuda"
HALF_REL = 1e-2  # one forward pass in bf16, two kernels
RUN_REL = 5e-2  # a few bf16 steps apart


def _decide(tmp_path, **model):
    from lmforge.config import validate
    from lmforge.training.device import decide

    tree = stage_tree("sft", tmp_path / "run", "bf16", model={"dtype": "auto", **model})
    return decide(validate(tree))


@needs_native_bf16
def test_auto_attention_follows_flash_attn_and_the_weights_dtype(tmp_path, monkeypatch):
    from lmforge.config import validate
    from lmforge.model.loader import load_tokenizer
    from lmforge.model.loader import attention_kind
    from lmforge.training.trainer import prepare_model

    monkeypatch.delenv("LMFORGE_NO_FLASH_ATTENTION", raising=False)
    flash = installed("flash_attn")
    half = _decide(tmp_path)
    assert (half.dtype, half.precision) == ("bfloat16", "bf16")
    assert half.attention == ("flash_attention_2" if flash else None)
    assert _decide(tmp_path, dtype="float32").attention is None  # flash needs half weights
    cfg = validate(stage_tree("sft", tmp_path / "run", "bf16", model={"dtype": "auto"}))
    model = prepare_model(cfg, load_tokenizer(cfg.model))
    assert attention_kind(model) == ("flash_attention_2" if flash else "sdpa")
    monkeypatch.setenv("LMFORGE_NO_FLASH_ATTENTION", "1")
    assert _decide(tmp_path).attention is None


@skip_if("flash-attn is installed: the refusal without it cannot be tested here"
         if installed("flash_attn") else None)
def test_flash_attention_2_without_the_package_is_refused_by_name(tmp_path):
    from lmforge.errors import ModelError

    with pytest.raises(ModelError, match="flash-attn"):
        _decide(tmp_path, attn_implementation="flash_attention_2")


def _model(path, attn: str):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16,
                                                 attn_implementation=attn).to(DEVICE)
    model.config.use_cache = False
    assert model.config._attn_implementation == attn
    return model


def _padded_batch(n: int = 6, seed: int = 0):
    import random

    import torch

    from lmforge.config.constants import IGNORE_INDEX

    rng = random.Random(seed)
    rows = [[rng.randint(10, 1000) for _ in range(rng.randint(5, 40))] for _ in range(n)]
    width = max(map(len, rows))
    ids = torch.zeros((n, width), dtype=torch.long)
    mask, labels = torch.zeros_like(ids), torch.full_like(ids, IGNORE_INDEX)
    for i, r in enumerate(rows):  # right padding, as the training collator pads
        ids[i, :len(r)], mask[i, :len(r)], labels[i, :len(r)] = torch.tensor(r), 1, torch.tensor(r)
    return {k: v.to(DEVICE) for k, v in
            {"input_ids": ids, "attention_mask": mask, "labels": labels}.items()}


def _loss_and_grad(model, batch):
    import torch

    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    grad = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    return float(loss), grad


@needs_flash
def test_flash_and_sdpa_give_the_same_loss_and_gradients_on_a_padded_batch(tiny_model_dir):
    import torch

    batch = _padded_batch()
    loss_f, grad_f = _loss_and_grad(_model(tiny_model_dir, "flash_attention_2"), batch)
    loss_s, grad_s = _loss_and_grad(_model(tiny_model_dir, "sdpa"), batch)
    assert loss_f == pytest.approx(loss_s, rel=HALF_REL)
    cosine = torch.nn.functional.cosine_similarity(grad_f, grad_s, dim=0).item()
    assert cosine > 0.99, cosine
    print(f"\npadded batch: loss flash {loss_f:.5f} sdpa {loss_s:.5f}, "
          f"gradient cosine {cosine:.5f}")


@needs_flash
def test_packed_rows_give_the_per_example_loss_with_both_kernels(tiny_model_dir):
    import torch

    from lmforge.data.collate import PackedCollator
    from lmforge.data.packing import pack_rows
    from tests.invariants.test_packing import MAX_LEN, _examples

    ids, labels = _examples()
    rows, _ = pack_rows(ids, labels, MAX_LEN)
    feats = [dict(input_ids=a, labels=b, position_ids=c)
             for a, b, c in zip(rows["input_ids"], rows["labels"], rows["position_ids"])]

    def summed(model, batch):
        batch = {k: v.to(DEVICE) if torch.is_tensor(v) else v for k, v in batch.items()}
        n = int((batch["labels"][:, 1:] != -100).sum())
        with torch.no_grad():
            return float(model(**batch).loss.double()) * n, n

    sdpa = _model(tiny_model_dir, "sdpa")
    alone = [summed(sdpa, {"input_ids": torch.tensor([s]), "labels": torch.tensor([lab])})
             for s, lab in zip(ids, labels)]
    want, count = sum(a for a, _ in alone), sum(n for _, n in alone)
    flash_batch = PackedCollator(pad_token_id=0, flash_varlen=True)(feats)
    assert "cu_seq_lens_q" in flash_batch and flash_batch["input_ids"].shape[0] > 1
    for name, model, batch in (("sdpa", sdpa, PackedCollator(pad_token_id=0)(feats)),
                               ("flash", _model(tiny_model_dir, "flash_attention_2"),
                                flash_batch)):
        got, n = summed(model, batch)
        assert n == count
        assert got == pytest.approx(want, rel=HALF_REL), name


@needs_flash
@pytest.mark.parametrize("stage", ["sft", "pt"])
def test_stage_losses_with_flash_match_sdpa(stage, tmp_path, monkeypatch):
    monkeypatch.delenv("LMFORGE_NO_FLASH_ATTENTION", raising=False)
    runs = {}
    for attn in ("auto", "sdpa"):
        tree = stage_tree(stage, tmp_path / attn, "bf16", steps=6,
                          model={"attn_implementation": attn})
        result, probe = run_stage(tree)
        runs[attn] = (losses(result.log_history), probe.facts["attention"])
    assert runs["auto"][1] == "flash_attention_2" and runs["sdpa"][1] == "sdpa"
    assert_close_losses(runs["auto"][0], runs["sdpa"][0], HALF_REL, RUN_REL,
                        f"{stage}: flash vs sdpa")


@needs("liger_kernel", "liger-kernel")
@needs_native_bf16
@pytest.mark.parametrize("stage, adapter", [("sft", "full"), ("sft", "lora"), ("pt", "full")])
def test_liger_kernels_are_used_and_match_the_plain_losses(stage, adapter, tmp_path):
    from lmforge.config import validate
    from lmforge.training.device import decide

    block = {"type": adapter} if adapter == "full" else {
        "type": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "modules_to_save": ["lm_head"]}
    runs = {}
    for name, extra in (("liger", {}), ("plain", {"use_liger_kernel": False})):
        tree = stage_tree(stage, tmp_path / name, "bf16", steps=6, adapter=block,
                          train={"extra": extra})
        assert decide(validate(tree)).liger  # sft/pt on a GPU with liger-kernel installed
        result, probe = run_stage(tree)
        runs[name] = (losses(result.log_history), probe.facts)
    assert runs["liger"][1]["use_liger_kernel"] and runs["liger"][1]["liger"], runs["liger"][1]
    assert not runs["plain"][1]["use_liger_kernel"] and not runs["plain"][1]["liger"]
    assert_close_losses(runs["liger"][0], runs["plain"][0], HALF_REL, RUN_REL,
                        f"{stage}/{adapter}: Liger vs plain")


@needs("liger_kernel", "liger-kernel")
def test_liger_stays_off_for_the_trl_and_ppo_stages(tmp_path):
    from lmforge.config import validate
    from lmforge.training.device import decide

    for stage in ("rm", "dpo", "kto", "orpo", "ppo", "grpo"):
        assert not decide(validate(stage_tree(stage, tmp_path / stage, "fp16"))).liger, stage
