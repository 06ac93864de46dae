"""Float32 attention where gradients flow under CPU bf16 autocast (``model/float32_attention.py``):
a layer whose query needs a gradient is attended in float32 (the float32 kernel's numbers exactly),
which brings the loss and gradients closer to a float32 run than bf16 attention does; without
gradients (frozen layers, inference) nothing changes; gradient checkpointing recomputes the same
numbers; chosen for CPU bf16 runs of SDPA models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _model(model_dir, float32_attention: bool):
    from transformers import AutoModelForCausalLM

    from lmforge.model.float32_attention import NAME, use_float32_attention

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 attn_implementation="sdpa")
    if float32_attention:
        assert use_float32_attention(model) and model.config._attn_implementation == NAME
    return model


def _batch(vocab: int, lengths=(19, 7, 19)):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (len(lengths), max(lengths)), generator=g)
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    return ids, mask, ids.masked_fill(mask == 0, -100)


def _loss_and_grads(model, autocast: bool):
    ids, mask, labels = _batch(model.config.vocab_size)
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()
                         if p.grad is not None}


def _error(grads, ref) -> float:
    return max(((grads[n] - g).norm() / g.norm().clamp_min(1e-12)).item() for n, g in ref.items())


def test_the_attention_of_a_layer_with_gradients_is_float32s():
    from types import SimpleNamespace

    import torch.nn.functional as F

    from lmforge.model.float32_attention import float32_grad_attention

    module = SimpleNamespace(is_causal=True, num_key_value_groups=2, training=True)
    q = torch.randn(2, 4, 9, 16, requires_grad=True)
    k, v = torch.randn(2, 2, 9, 16), torch.randn(2, 2, 9, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = float32_grad_attention(module, q, k, v, None)
        frozen, _ = float32_grad_attention(module, q.detach(), k, v, None)
        bf16 = F.scaled_dot_product_attention(q.detach(), k, v, is_causal=True, enable_gqa=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert out.dtype == torch.float32 and frozen.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref.transpose(1, 2), rtol=1e-6, atol=1e-6)
    assert torch.equal(frozen, bf16.transpose(1, 2))  # no gradient: autocast's bf16, as before


def test_loss_and_gradients_closer_to_float32_than_bf16_attention(tiny_model_dir):
    torch.manual_seed(0)
    loss32, grads32 = _loss_and_grads(_model(tiny_model_dir, False), autocast=False)
    loss_bf16, grads_bf16 = _loss_and_grads(_model(tiny_model_dir, False), autocast=True)
    loss_ours, grads_ours = _loss_and_grads(_model(tiny_model_dir, True), autocast=True)
    assert grads_ours.keys() == grads32.keys() and grads32
    assert abs(loss_ours - loss32) <= abs(loss_bf16 - loss32) + 1e-4
    assert _error(grads_ours, grads32) <= _error(grads_bf16, grads32)
    assert loss_ours == pytest.approx(loss32, rel=2e-2)  # still bf16 matmuls elsewhere


def test_without_gradients_nothing_changes(tiny_model_dir):
    ids, mask, _ = _batch(_model(tiny_model_dir, False).config.vocab_size)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a = _model(tiny_model_dir, False)(input_ids=ids, attention_mask=mask).logits
        b = _model(tiny_model_dir, True)(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(a, b)


def test_gradient_checkpointing_recomputes_the_same_numbers(tiny_model_dir):
    plain = _model(tiny_model_dir, True)
    checkpointed = _model(tiny_model_dir, True)
    checkpointed.gradient_checkpointing_enable(
        gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpointed.train(), plain.train()
    loss_a, grads_a = _loss_and_grads(plain, autocast=True)
    loss_b, grads_b = _loss_and_grads(checkpointed, autocast=True)
    assert loss_a == loss_b and grads_a.keys() == grads_b.keys()
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.parametrize("stage,change,expected", [
    ("sft", {"train": {"precision": "bf16"}}, "float32"),
    ("sft", {"train": {"precision": "bf16"}, "model": {"attn_implementation": "sdpa"}}, None),
    ("sft", {}, "rows"),
    ("sft", {"data": {"packing": True}}, "rows"),
    ("dpo", {}, None),
    ("dpo", {"train": {"precision": "bf16"}}, "float32"),
])
def test_chosen_for_cpu_bf16_unless_sdpa_is_asked(stage, change, expected, tmp_path, monkeypatch):
    from lmforge.training import device
    from tests.integration.test_adapter_training import sft_config

    monkeypatch.setattr(device, "cpu_native_bf16", lambda *a: True)  # any CI CPU
    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4}, model=change.get("model"),
                     train=change.get("train"))
    update = {"stage": stage}
    if "data" in change:
        update["data"] = cfg.data.model_copy(update=change["data"])
    assert device.decide(cfg.model_copy(update=update)).cpu_attention == expected


def test_a_bf16_training_run_uses_it(tmp_path, monkeypatch):
    from lmforge.model.float32_attention import NAME
    from lmforge.model.loader import attention_kind, load_tokenizer
    from lmforge.training import device
    from lmforge.training.trainer import prepare_model
    from tests.integration.test_adapter_training import sft_config

    monkeypatch.setattr(device, "cpu_native_bf16", lambda *a: True)
    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4}, train={"precision": "bf16"})
    model = prepare_model(cfg, load_tokenizer(cfg.model))
    assert model.config._attn_implementation == NAME
    assert attention_kind(model) == "sdpa"
