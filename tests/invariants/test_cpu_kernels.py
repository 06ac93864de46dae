"""lmforge's layers in transformers' kernel hub for CPU training (``model/cpu_kernels.py``): RMSNorm
(``model/fused_norm.py``) and RoPE (``model/fused_rope.py``) as one autograd node each. Loss and
every gradient equal the model's own layers (float32: loss within 1e-6, gradients within 1e-5),
calls without gradients run the model's own code, a layer of the same hub name that computes
something else keeps its own, and the layers are chosen for CPU runs without DeepSpeed / FSDP."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
kernels = pytest.importorskip("kernels")

from tests.invariants.test_fused_lora import _batch, _loss_and_grads  # noqa: E402


@pytest.fixture
def hub_layers():
    """lmforge's mapping for this test only (``register`` would keep it for the process)."""
    from lmforge.model.cpu_kernels import mapping

    with kernels.use_kernel_mapping(mapping()):
        yield


def _model(model_dir, hub: bool, lora: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 use_kernels=hub)
    if lora:  # non-zero B: the LoRA path changes the loss
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                                 init_lora_weights=False))
    return model.train()  # the switch to training mode kernelizes (with hub)


def _hub_layers_in_place(model) -> tuple[int, int]:
    from lmforge.model.fused_norm import FusedRMSNorm
    from lmforge.model.fused_rope import FusedRotary

    norms = ropes = 0
    for module in model.modules():
        forward = getattr(vars(module).get("forward"), "__func__", None)
        norms += forward is FusedRMSNorm.forward
        for func in getattr(module, "_kernel_funcs", {}).values():
            ropes += getattr(vars(func).get("forward"), "__func__", None) is FusedRotary.forward
    return norms, ropes


@pytest.mark.parametrize("which", ["tiny_model_dir", "tiny_qwen_dir"])
@pytest.mark.parametrize("lora", [True, False])
def test_training_equals_the_models_own_layers(which, lora, request, hub_layers):
    model_dir = request.getfixturevalue(which)
    own, hub = _model(model_dir, False, lora), _model(model_dir, True, lora)
    layers = hub.config.num_hidden_layers
    assert _hub_layers_in_place(hub) == (2 * layers + 1, layers)
    assert _hub_layers_in_place(own) == (0, 0)
    batch = _batch(own.config.vocab_size)
    loss_a, grads_a = _loss_and_grads(own, batch)
    loss_b, grads_b = _loss_and_grads(hub, batch)
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    if not lora:  # full fine-tuning: the norms' own weights get gradients too
        assert any("norm" in name for name in grads_a)
    for name, grad in grads_a.items():
        torch.testing.assert_close(grads_b[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_calls_without_gradients_run_the_models_own_code(tiny_model_dir, hub_layers):
    own, hub = _model(tiny_model_dir, False, True), _model(tiny_model_dir, True, True)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, own.config.vocab_size, (2, 9), generator=g)
    with torch.no_grad():
        assert torch.equal(hub(input_ids=ids).logits, own(input_ids=ids).logits)


def test_the_functions_gradients():
    from lmforge.model.fused_norm import _RmsNormFn
    from lmforge.model.fused_rope import _RopeFn

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.rand(6, dtype=torch.float64, generator=g).add_(0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: _RmsNormFn.apply(a, b, 1e-6), (x, w))
    q = torch.randn(2, 3, 4, 8, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(2, 1, 4, 8, dtype=torch.float64, generator=g, requires_grad=True)
    cos, sin = torch.randn(2, 2, 4, 8, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda a, b: _RopeFn.apply(a, b, cos, sin), (q, k))


def test_the_functions_equal_transformers():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb

    from lmforge.model.fused_norm import _RmsNormFn
    from lmforge.model.fused_rope import _RopeFn

    g = torch.Generator().manual_seed(0)
    norm = LlamaRMSNorm(64, 1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=g)
    x = torch.randn(3, 5, 64, generator=g)
    assert torch.equal(_RmsNormFn.apply(x, norm.weight, 1e-5), norm(x))  # the same operations
    q, k = torch.randn(2, 4, 5, 16, generator=g), torch.randn(2, 2, 5, 16, generator=g)
    cos, sin = torch.randn(2, 5, 16, generator=g), torch.randn(2, 5, 16, generator=g)
    for ours, theirs in zip(_RopeFn.apply(q, k, cos, sin), apply_rotary_pos_emb(q, k, cos, sin)):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_layers_that_compute_otherwise_keep_their_own():
    from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb

    from lmforge.model import fused_norm, fused_rope

    class OffsetRMSNorm(LlamaRMSNorm):  # Gemma-style: (1 + weight)
        def forward(self, hidden_states):
            return super().forward(hidden_states) + 1

    norm = OffsetRMSNorm(8, 1e-6)
    x = torch.randn(2, 8, requires_grad=True)
    assert fused_norm.FusedRMSNorm.forward(norm, x).equal(norm(x))
    assert fused_norm._SAME[OffsetRMSNorm] is False
    assert not fused_rope._computes_the_same(lambda q, k, cos, sin: (q * cos, k * cos))
    assert fused_rope._computes_the_same(apply_rotary_pos_emb.forward)  # the hub's wrapper


@pytest.mark.parametrize("change,expected", [({}, True), ({"deepspeed": "zero2"}, False),
                                             ({"fsdp": True}, False)])
def test_chosen_for_cpu_runs_without_deepspeed_or_fsdp(change, expected, tmp_path, monkeypatch):
    from lmforge.training import device
    from tests.integration.test_adapter_training import sft_config

    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4})
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update=change)})
    assert device.decide(cfg).cpu_kernels is expected
    monkeypatch.setattr(device, "gpu_present", lambda: True)
    assert device.decide(cfg).cpu_kernels is False


def test_a_cpu_training_run_uses_them(tmp_path):
    from lmforge.model.loader import load_tokenizer
    from lmforge.training.trainer import prepare_model
    from tests.integration.test_adapter_training import sft_config

    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4})
    model = prepare_model(cfg, load_tokenizer(cfg.model)).train()
    layers = model.config.num_hidden_layers
    assert _hub_layers_in_place(model) == (2 * layers + 1, layers)


def test_the_swaps_are_not_logged(tiny_model_dir, caplog):
    """kernels logs every layer it swaps on the root logger at each train / eval switch."""
    import logging

    from lmforge.model.cpu_kernels import register

    assert register()
    caplog.set_level(logging.INFO)
    model = _model(tiny_model_dir, True, False)
    model.eval().train()
    assert _hub_layers_in_place(model)[0] > 0
    assert not [r for r in caplog.records if "Using function/layer" in r.getMessage()]
