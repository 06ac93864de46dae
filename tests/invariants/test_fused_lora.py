"""``adapter.fused`` (``model/fused_lora.py``): a LoRA ``nn.Linear`` computed as one autograd
node gives peft's own layer's loss and gradients (float32 within 1e-5, with and without dropout,
bf16 autocast within bf16's rounding); the autograd function passes ``gradcheck``; everything it
does not handle goes to peft's forward; a saved adapter is plain peft."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _lora(model_dir, fused: bool, dropout: float = 0.0, seed: int = 0):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from lmforge.model.fused_lora import register

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=dropout,
                        init_lora_weights=False)  # non-zero B: the LoRA path changes the loss
    return get_peft_model(model, register(config) if fused else config)


def _batch(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (3, 19), generator=g)
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    return {"input_ids": ids, "attention_mask": mask,
            "labels": ids.masked_fill(mask == 0, -100)}


def _loss_and_grads(model, batch, bf16=False, seed=1):
    model.train()
    model.zero_grad()
    torch.manual_seed(seed)  # the same dropout masks on both sides
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()
                         if p.grad is not None}


def _close(a, b, rtol, atol):
    loss_a, grads_a = a
    loss_b, grads_b = b
    assert loss_b == pytest.approx(loss_a, rel=rtol)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_float32_loss_and_gradients_equal_peft(tiny_model_dir, dropout):
    from lmforge.model.fused_lora import FusedLoraLinear

    plain, fused = _lora(tiny_model_dir, False, dropout), _lora(tiny_model_dir, True, dropout)
    layers = [m for m in fused.modules() if isinstance(m, FusedLoraLinear)]
    assert len(layers) == sum(1 for m in plain.modules() if type(m).__name__ == "Linear"
                              and hasattr(m, "lora_A"))
    batch = _batch(plain.config.vocab_size)
    _close(_loss_and_grads(plain, batch), _loss_and_grads(fused, batch), 1e-5, 1e-7)


def test_bf16_autocast_as_accurate_as_peft(tiny_model_dir):
    """Under bf16 autocast both layers round differently; the fused gradients are as close to
    the float32 ones as peft's (mean relative error ~3 % for both on this model)."""
    plain, fused = _lora(tiny_model_dir, False), _lora(tiny_model_dir, True)
    batch = _batch(plain.config.vocab_size)
    loss32, exact = _loss_and_grads(plain, batch)
    loss_p, grads_p = _loss_and_grads(plain, batch, bf16=True)
    loss_f, grads_f = _loss_and_grads(fused, batch, bf16=True)
    assert loss_f == pytest.approx(loss32, rel=1e-3) and loss_p == pytest.approx(loss32, rel=1e-3)

    def error(grads):
        return sum(float((grads[n] - g).norm() / g.norm()) for n, g in exact.items()) / len(exact)

    assert grads_f.keys() == exact.keys()
    assert error(grads_f) <= 1.25 * error(grads_p) + 5e-3


@pytest.mark.parametrize("split", [False, True])
def test_autograd_function_gradcheck(split):
    from lmforge.model.fused_lora import _LoraLinearFn

    g = torch.Generator().manual_seed(0)

    def leaf(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    x, weight, bias, a, b = leaf(2, 3, 6), leaf(5, 6), leaf(5), leaf(2, 6), leaf(5, 2)
    weight.requires_grad_(False)  # the base weight is frozen: the function has no gradient for it
    xd = leaf(2, 3, 6) if split else None
    assert torch.autograd.gradcheck(
        lambda *t: _LoraLinearFn.apply(t[0], t[1] if split else None, *t[2:], 0.5),
        (x, xd if split else x, weight, bias, a, b))


def test_rank_r_products_in_blas_friendly_order_equal_the_plain_ones():
    """``times_b`` / ``grad_b`` reorder the r-column products for speed, not their values."""
    from lmforge.model.fused_lora import grad_b, times_b

    g = torch.Generator().manual_seed(0)
    grad, xa, lora_b = (torch.randn(*s, generator=g) for s in ((300, 96), (300, 8), (96, 8)))
    torch.testing.assert_close(times_b(grad, lora_b), grad @ lora_b, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad_b(grad, xa), grad.t() @ xa, rtol=1e-6, atol=1e-5)
    assert grad_b(grad, xa).shape == lora_b.shape


def _fused_logits(model_dir):
    """(model in eval mode, batch, its logits) of the fused tiny LoRA model."""
    model = _lora(model_dir, True).eval()
    batch = _batch(model.config.vocab_size)
    with torch.no_grad():
        return model, batch, model(**batch).logits


def test_unhandled_cases_use_peft_forward(tiny_model_dir, monkeypatch):
    from lmforge.model import fused_lora

    model, batch, fused_logits = _fused_logits(tiny_model_dir)
    with torch.no_grad():
        with model.disable_adapter():
            base_logits = model(**batch).logits
    assert not torch.allclose(fused_logits, base_logits)

    def refuse(*args):
        raise AssertionError("the fused function ran")

    monkeypatch.setattr(fused_lora._LoraLinearFn, "apply", refuse)
    with torch.no_grad():
        with model.disable_adapter():  # a disabled adapter: the base model alone
            torch.testing.assert_close(model(**batch).logits, base_logits)
        for m in model.modules():
            if isinstance(m, fused_lora.FusedLoraLinear):
                m.get_base_layer().weight.ds_id = 7  # a ZeRO-3 partitioned weight
        torch.testing.assert_close(model(**batch).logits, fused_logits, rtol=1e-5, atol=1e-5)


def test_only_exact_linears_are_dispatched():
    from peft import LoraConfig

    from lmforge.model.fused_lora import FusedLoraLinear, fused_dispatch

    class Subclass(torch.nn.Linear):  # e.g. a quantized Linear
        pass

    config = LoraConfig(r=2, target_modules=["x"])
    assert fused_dispatch(Subclass(4, 4), "default", config, r=2, lora_alpha=4) is None
    assert fused_dispatch(torch.nn.Linear(4, 4), "default", config,
                          parameter_name="weight") is None
    made = fused_dispatch(torch.nn.Linear(4, 4), "default", config, r=2, lora_alpha=4)
    assert isinstance(made, FusedLoraLinear)


def test_saved_adapter_is_plain_peft_and_merges(tiny_model_dir, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model, batch, expected = _fused_logits(tiny_model_dir)
    model.save_pretrained(tmp_path / "adapter")
    assert "custom" not in (tmp_path / "adapter" / "adapter_config.json").read_text()
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "adapter")).eval()
    assert not any(type(m).__name__ == "FusedLoraLinear" for m in loaded.modules())
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected, rtol=1e-5, atol=1e-5)
        merged = model.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, expected, rtol=1e-5, atol=1e-5)


def test_config_switch_and_refusal():
    from lmforge.config.adapter import AdapterConfig
    from lmforge.errors import ConfigError
    from lmforge.model.adapters import lora_config

    assert lora_config(AdapterConfig(type="lora"))._custom_modules
    assert not lora_config(AdapterConfig(type="lora", fused=False))._custom_modules
    assert not lora_config(AdapterConfig(type="qlora"))._custom_modules
    resolved = AdapterConfig(type="full").model_dump()  # what lmforge_config.yaml holds
    assert AdapterConfig(**resolved).fused is None
    from lmforge.config import validate

    with pytest.raises(ConfigError, match="fused applies to lora, not qlora"):
        validate({"stage": "sft", "model": {"path": "m"}, "data": {"train": "t.jsonl"},
                  "adapter": {"type": "qlora", "fused": True}})
