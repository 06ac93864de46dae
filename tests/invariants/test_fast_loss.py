"""The fast loss (LM head only on trained positions, training/fastloss.py) gives the same numbers as
the reference path (the model's own loss over all logits), on the same batches, in fp32:

- loss and every gradient within 1e-5: padded batches with masked prompts, packed rows (position
  ids, no attention mask), a LoRA adapter (peft passes logits_to_keep through), a Qwen2 model,
  with and without ``num_items_in_batch`` (gradient-accumulation normalisation);
- through the Trainer: an sft run with ``train.fast_loss`` on and off logs the same loss at
  every step (within 1e-4) with gradient accumulation 2, and the fast path was really taken;
- fallbacks: a model whose forward has no ``logits_to_keep``, and a trainer class with its own
  compute_loss (trl's), use the normal path.
"""

from __future__ import annotations

import random

import pytest

from tests.conftest import write_jsonl

torch = pytest.importorskip("torch")


def _batch(vocab: int, lengths, prompt_frac=0.6, packed=False, seed=0, pad_id=0):
    """Variable-length rows, prompts masked (-100); padded with a mask, or packed."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=gen).tolist()
        p = max(1, int(n * prompt_frac))
        rows.append((ids, [-100] * p + ids[p:]))
    if packed:  # two rows of packed examples (positions restart at 0)
        half = len(rows) // 2
        out = {"input_ids": [], "labels": [], "position_ids": []}
        for part in (rows[:half], rows[half:]):
            ids, lab, pos = [], [], []
            for i, l in part:
                ids += i
                lab += [-100] + l[1:]
                pos += list(range(len(i)))
            out["input_ids"].append(ids)
            out["labels"].append(lab)
            out["position_ids"].append(pos)
        width = max(len(r) for r in out["input_ids"])
        for k, fill in (("input_ids", pad_id), ("labels", -100)):
            out[k] = [r + [fill] * (width - len(r)) for r in out[k]]
        out["position_ids"] = [r + list(range(width - len(r))) for r in out["position_ids"]]
        return {k: torch.tensor(v) for k, v in out.items()}
    width = max(lengths)
    return {"input_ids": torch.tensor([i + [pad_id] * (width - len(i)) for i, _ in rows]),
            "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows]),
            "attention_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i))
                                            for i, _ in rows])}


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()
            if p.requires_grad and p.grad is not None}


def _compare(model, batch, num_items=None):
    from lmforge.training.fastloss import causal_lm_loss

    model.train()
    model.zero_grad()
    kwargs = {} if num_items is None else {"num_items_in_batch": num_items}
    ref = model(**batch, use_cache=False, **kwargs).loss
    ref.backward()
    ref_grads = _grads(model)
    model.zero_grad()
    fast = causal_lm_loss(model, dict(batch, use_cache=False), num_items)
    fast.backward()
    fast_grads = _grads(model)
    assert float(fast.detach()) == pytest.approx(float(ref.detach()), abs=1e-5, rel=1e-5)
    assert ref_grads.keys() == fast_grads.keys() and ref_grads
    for name, g in ref_grads.items():
        assert torch.allclose(fast_grads[name], g, atol=1e-5, rtol=1e-4), name
    return float(ref.detach())


def _load(path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("num_items", [None, 37])
def test_same_loss_and_gradients_full_model(tiny_model_dir, packed, num_items):
    model = _load(tiny_model_dir)
    vocab = model.config.vocab_size
    batch = _batch(vocab, [9, 23, 5, 17], packed=packed)
    loss = _compare(model, batch, None if num_items is None else torch.tensor(num_items))
    assert loss > 0


def test_same_loss_and_gradients_lora_qwen(tiny_qwen_dir):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_load(tiny_qwen_dir), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                           target_modules="all-linear",
                                                           init_lora_weights=False))
    _compare(model, _batch(model.config.vocab_size, [12, 30, 7], prompt_frac=0.9, seed=1),
             torch.tensor(11))


def test_batch_without_trained_tokens_is_zero_loss(tiny_model_dir):
    from lmforge.training.fastloss import causal_lm_loss

    model = _load(tiny_model_dir)
    batch = _batch(model.config.vocab_size, [6, 4], prompt_frac=1.0)
    loss = causal_lm_loss(model, batch, torch.tensor(5))
    assert float(loss.detach()) == 0.0
    loss.backward()  # no error: the graph exists, gradients are zero


@pytest.fixture(scope="module")
def sft_data(tmp_path_factory):
    rng = random.Random(5)
    words = "alpha beta gamma delta one two three four five red green blue".split()
    rows = [{"instruction": " ".join(rng.choice(words) for _ in range(rng.randint(3, 25))),
             "input": "", "output": " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))}
            for _ in range(24)]
    return write_jsonl(tmp_path_factory.mktemp("fastloss") / "train.jsonl", rows)


def _sft(tiny_model_dir, data, out, fast: bool, packing: bool = False):
    from lmforge.config import validate
    from lmforge.stages import run

    cfg = validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                    "data": {"train": str(data), "format": "alpaca", "max_length": 96,
                             "packing": packing, "cache": False},
                    "train": {"output_dir": str(out), "max_steps": 4, "batch_size": 2,
                              "grad_accum": 2, "learning_rate": 3e-3, "logging_steps": 1,
                              "save_steps": 1000, "report_to": ["none"], "seed": 3,
                              "num_threads": 1, "fast_loss": fast}})
    return run(cfg)


@pytest.mark.parametrize("packing", [False, True])
def test_sft_run_logs_the_same_losses(tiny_model_dir, sft_data, tmp_path, monkeypatch, packing):
    from transformers import Trainer

    from lmforge.training import fastloss

    calls, normal = [], []
    real, real_normal = fastloss.causal_lm_loss, Trainer.compute_loss
    monkeypatch.setattr(fastloss, "causal_lm_loss",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(Trainer, "compute_loss",
                        lambda *a, **k: normal.append(1) or real_normal(*a, **k))
    slow = _sft(tiny_model_dir, sft_data, tmp_path / "slow", fast=False, packing=packing)
    assert not calls and len(normal) >= 5
    normal.clear()
    fast = _sft(tiny_model_dir, sft_data, tmp_path / "fast", fast=True, packing=packing)
    assert len(calls) >= 5 and not normal  # every micro-batch on the fast path
    a = {h["step"]: h["loss"] for h in slow.log_history if "loss" in h}
    b = {h["step"]: h["loss"] for h in fast.log_history if "loss" in h}
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-4), step


class _NoKeep(torch.nn.Module):
    """A causal LM whose forward does not take logits_to_keep."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, labels=labels)


def _trainer(model, tmp_path, base=None):
    from transformers import TrainingArguments

    from lmforge.training.trainer import trainer_class

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    trainer = trainer_class(base)(model=model, args=args)
    trainer.fast_loss = True
    return trainer


def test_falls_back_without_logits_to_keep(tiny_model_dir, tmp_path, monkeypatch):
    from lmforge.training import fastloss

    model = _NoKeep(_load(tiny_model_dir)).train()
    monkeypatch.setattr(fastloss, "causal_lm_loss", lambda *a, **k: pytest.fail("fast path"))
    trainer = _trainer(model, tmp_path)
    batch = _batch(model.config.vocab_size, [8, 5])
    loss = trainer.compute_loss(model, batch)
    assert float(loss.detach()) == pytest.approx(float(model(**batch).loss.detach()), abs=1e-6)
    assert trainer._fast_loss_state is False


def test_trainer_with_its_own_compute_loss_is_left_alone(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import Trainer

    from lmforge.training import fastloss

    class Custom(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return torch.tensor(42.0)

    monkeypatch.setattr(fastloss, "causal_lm_loss", lambda *a, **k: pytest.fail("fast path"))
    model = _load(tiny_model_dir).train()
    trainer = _trainer(model, tmp_path, Custom)
    assert float(trainer.compute_loss(model, _batch(model.config.vocab_size, [8, 5]))) == 42.0
