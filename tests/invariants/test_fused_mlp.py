"""The gated MLP as one autograd node (``model/fused_mlp.py``): loss and gradients equal the
per-layer fused LoRA path (float32 within 1e-5; bf16 as close to float32 as peft's), fewer saved
activations, and modules it must not take keep their own forward."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tests.invariants.test_fused_lora import _batch, _lora, _loss_and_grads  # noqa: E402


def _fused_mlp_model(model_dir, **kwargs):
    from lmforge.model.fused_mlp import fuse_mlps

    model = _lora(model_dir, True, **kwargs)
    return model, fuse_mlps(model)


def test_float32_loss_and_gradients_equal_the_layer_path(tiny_model_dir):
    layers, (fused, count) = _lora(tiny_model_dir, True), _fused_mlp_model(tiny_model_dir)
    assert count == layers.config.num_hidden_layers
    batch = _batch(layers.config.vocab_size)
    loss_a, grads_a = _loss_and_grads(layers, batch)
    loss_b, grads_b = _loss_and_grads(fused, batch)
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_bf16_autocast_as_accurate_as_peft(tiny_model_dir):
    plain, (fused, _) = _lora(tiny_model_dir, False), _fused_mlp_model(tiny_model_dir)
    batch = _batch(plain.config.vocab_size)
    _, exact = _loss_and_grads(plain, batch)
    _, grads_p = _loss_and_grads(plain, batch, bf16=True)
    _, grads_f = _loss_and_grads(fused, batch, bf16=True)

    def error(grads):
        return sum(float((grads[n] - g).norm() / g.norm()) for n, g in exact.items()) / len(exact)

    assert error(grads_f) <= 1.25 * error(grads_p) + 5e-3


def _saved_bytes(model, batch) -> int:
    sizes = {}

    def pack(t):
        sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch).loss
    return sum(sizes.values())


def test_fewer_activations_are_kept(tiny_model_dir):
    layers, (fused, _) = _lora(tiny_model_dir, True), _fused_mlp_model(tiny_model_dir)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, layers.config.vocab_size, (4, 64), generator=g)
    batch = {"input_ids": ids, "labels": ids}
    width = layers.config.intermediate_size
    saved = _saved_bytes(layers, batch) - _saved_bytes(fused, batch)
    # two intermediate-width float32 tensors per layer and token are no longer kept: the SiLU
    # output and the product
    expected = 2 * 4 * 64 * width * 4 * layers.config.num_hidden_layers
    assert saved >= 0.9 * expected, (saved, expected)


def test_dropout_and_no_grad_use_the_module_forward(tiny_model_dir, monkeypatch):
    from lmforge.model import fused_mlp

    model, count = _fused_mlp_model(tiny_model_dir, dropout=0.1)
    assert count == 0  # LoRA dropout: the layers' own path
    model, count = _fused_mlp_model(tiny_model_dir)
    assert count > 0

    def refuse(*args):
        raise AssertionError("the fused MLP ran")

    monkeypatch.setattr(fused_mlp._SwiGluLoraFn, "apply", refuse)
    batch = _batch(model.config.vocab_size)
    with torch.no_grad():
        model(**batch)


def test_an_mlp_computing_something_else_keeps_its_forward(tiny_model_dir):
    from lmforge.model.fused_mlp import fuse_mlps

    model = _lora(tiny_model_dir, True)
    mlp_class = type(model.base_model.model.model.layers[0].mlp)

    class UpGated(mlp_class):  # the activation on the other branch
        def forward(self, x):
            return self.down_proj(self.gate_proj(x) * self.act_fn(self.up_proj(x)))

    for layer in model.base_model.model.model.layers:
        layer.mlp.__class__ = UpGated
        torch.nn.init.normal_(layer.mlp.down_proj.lora_B["default"].weight)
    assert fuse_mlps(model) == 0
    assert all("forward" not in vars(layer.mlp) for layer in model.base_model.model.model.layers)


def test_the_fused_forward_survives_mode_switches(tiny_model_dir):
    """transformers' kernel hub re-dispatches the layers it marks at every train / eval switch and
    drops a forward set on their instances (docs/architecture.md); the MLP is not marked."""
    model, count = _fused_mlp_model(tiny_model_dir)
    model.eval().train().eval().train()
    fused = [m for m in model.modules() if "forward" in vars(m)
             and getattr(vars(m)["forward"], "__func__", None) is not None
             and vars(m)["forward"].__func__.__name__ == "fused_forward"]
    assert count > 0 and len(fused) == count
