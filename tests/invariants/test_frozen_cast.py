"""Frozen linear weights stored in bfloat16 once (``training/frozen_cast.py``) give exactly what
CPU bf16 autocast computes from their float32 originals: the same LoRA loss and gradients, the same
engine log-likelihoods; trainable, tied and non-float32 weights are left alone."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _lora(model_dir, seed=0):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0,
                        init_lora_weights=False)  # non-zero B: the LoRA path changes the loss
    return get_peft_model(model, config)


def _batch(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (3, 19), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # some padding, left
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss_and_grads(model, batch):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()
                         if p.grad is not None}


def test_lora_loss_and_gradients_unchanged(tiny_model_dir):
    from lmforge.training.frozen_cast import cast_frozen_linears

    plain, cast = _lora(tiny_model_dir), _lora(tiny_model_dir)
    batch = _batch(plain.config.vocab_size)
    loss_a, grads_a = _loss_and_grads(plain, batch)
    assert cast_frozen_linears(cast) > 0
    loss_b, grads_b = _loss_and_grads(cast, batch)
    assert loss_b == loss_a
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        assert torch.equal(grad, grads_b[name]), name


def test_what_is_cast_and_what_is_left(tiny_model_dir):
    from lmforge.training.frozen_cast import cast_frozen_linears

    model = _lora(tiny_model_dir)
    embeddings = model.get_input_embeddings().weight
    count = cast_frozen_linears(model)
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    frozen = [m for m in linears if not m.weight.requires_grad and m.weight is not embeddings]
    assert count == len(frozen)
    assert all(m.weight.dtype == torch.bfloat16 for m in frozen)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert embeddings.dtype == torch.float32
    assert cast_frozen_linears(model) == 0  # nothing float32 and frozen is left


def test_inference_casts_layers_that_require_grad_and_keeps_the_flag(tiny_model_dir):
    """An engine's model never trains: its linears are cast even though from_pretrained left
    them requiring grad, and the flag stays (autocast caches the tied head's cast only then)."""
    from transformers import AutoModelForCausalLM

    from lmforge.training.frozen_cast import cast_frozen_linears

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    assert cast_frozen_linears(model) == 0  # training rules: everything here requires grad
    assert cast_frozen_linears(model, inference=True) > 0
    assert all(p.requires_grad for p in model.parameters())


def test_tied_head_stays_float32(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from lmforge.training.frozen_cast import cast_frozen_linears

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model.tie_weights()
    model.lm_head.weight = model.get_input_embeddings().weight  # tie, whatever the config says
    model.requires_grad_(False)
    cast_frozen_linears(model)
    assert model.lm_head.weight.dtype == torch.float32
    assert model.get_input_embeddings().weight.dtype == torch.float32


def _mapped_from(directory) -> list[tuple[int, int]]:
    """Address ranges of ``directory``'s safetensors files mapped into this process."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and parts[5].startswith(str(directory)) \
                    and parts[5].endswith(".safetensors"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                ranges.append((start, end))
    return ranges


def _in_file(model, directory) -> list[str]:
    ranges = _mapped_from(directory)
    tensors = list(model.named_parameters(remove_duplicate=False)) + \
        list(model.named_buffers(remove_duplicate=False))
    return [name for name, t in tensors
            if any(a <= t.untyped_storage().data_ptr() < b for a, b in ranges)]


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="Linux only")
def test_left_weights_leave_the_checkpoint_mapping(tiny_model_dir, tmp_path):
    """transformers loads safetensors as views into the mapped file; once the linears are cast,
    the float32 rest (embeddings, norms) is copied out so the file is no longer kept mapped.
    Values and the tied head's sharing stay as they were. (A copy of the model: other tests'
    models in this process may map the shared one.)"""
    import gc
    import shutil

    from transformers import AutoModelForCausalLM

    from lmforge.training.frozen_cast import cast_frozen_linears

    tiny_model_dir = shutil.copytree(tiny_model_dir, tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model.lm_head.weight = model.get_input_embeddings().weight
    model.requires_grad_(False)
    assert _in_file(model, tiny_model_dir)  # loaded as views into the file
    before = {n: t.detach().clone() for n, t in model.state_dict().items()
              if t.dtype == torch.float32}
    assert cast_frozen_linears(model) > 0
    gc.collect()
    assert _in_file(model, tiny_model_dir) == []
    assert _mapped_from(tiny_model_dir) == []  # nothing holds the file open any more
    assert model.lm_head.weight is model.get_input_embeddings().weight
    after = model.state_dict()
    left = [n for n, t in after.items() if t.dtype == torch.float32]
    assert left and set(left) <= set(before)
    for name in left:
        assert torch.equal(after[name], before[name]), name


def test_engine_scores_unchanged(tiny_model_dir, monkeypatch):
    """The engine casts the models it loads under bf16; its log-likelihoods stay the same."""
    from lmforge.infer.engine import ChatEngine
    from lmforge.training import device

    monkeypatch.setattr(device, "cpu_native_bf16", lambda *a, **k: True)
    import lmforge.training.frozen_cast as frozen_cast

    pairs = [([5, 9, 11, 3, 8], [7, 4]), ([6, 2], [9, 9, 10])]
    cast = ChatEngine.load(str(tiny_model_dir), precision="bf16")
    assert all(m.weight.dtype == torch.bfloat16 for m in cast.model.modules()
               if type(m) is torch.nn.Linear and m.weight is not
               cast.model.get_input_embeddings().weight)
    monkeypatch.setattr(frozen_cast, "cast_frozen_linears", lambda model, **kw: 0)
    plain = ChatEngine.load(str(tiny_model_dir), precision="bf16")
    assert cast.loglikelihood(pairs) == plain.loglikelihood(pairs)


def test_decided_for_cpu_bf16_peft_runs_only(monkeypatch):
    from lmforge.config import validate
    from lmforge.training import device

    monkeypatch.setattr(device, "cpu_native_bf16", lambda *a, **k: True)
    monkeypatch.setattr(device, "on_gpu", lambda cfg: False)

    def facts(adapter="lora", stage="sft", **train):
        method = {"grpo": {"reward_functions": ["m:f"]}} if stage == "grpo" else {}
        return device.decide(validate({
            "stage": stage, "model": {"path": "builtin:tiny-llama"},
            "adapter": {"type": adapter}, "data": {"train": "x.jsonl"},
            "train": {"output_dir": "out", **train}, **method}))

    assert facts(precision="bf16").frozen_bf16
    assert not facts(precision="fp32").frozen_bf16
    assert not facts("full", precision="bf16").frozen_bf16  # every weight trains
    assert not facts(precision="bf16", deepspeed="zero2").frozen_bf16  # one dtype per flat buffer
    assert facts(stage="dpo", precision="bf16").frozen_bf16
    # trl's GRPOTrainer generates outside autocast, where a bfloat16 weight meets float32 inputs
    assert not facts(stage="grpo", precision="bf16").frozen_bf16
