"""QLoRA 4-bit with CUDA bitsandbytes (marker ``gpu``; skipped without CUDA or bitsandbytes).

The sft stage with ``adapter.type: qlora, bits: 4`` on the tiny model, bf16 on a GPU:

- the base is really quantized on the GPU (bitsandbytes Linear4bit layers with their packed
  weights on CUDA, bf16 compute dtype), only the LoRA weights and modules_to_save train, and the
  loss falls;
- ``lmforge export --merge --dequantize`` folds the adapter into the float base: the export loads
  in plain transformers without quantized layers and equals the float base + adapter (peft);
- ``--quantize 4`` saves it 4-bit again: it loads quantized on the GPU, close to the float export.
"""

from __future__ import annotations

import pytest

from tests.gpu.gpu_runs import (GPU, Probe, assert_falls, assert_finite, losses, needs,
                                needs_native_bf16, skipped_steps, stage_tree)

pytestmark = [*GPU, needs("bitsandbytes", "bitsandbytes", "qlora"), needs_native_bf16]

QLORA = {"type": "qlora", "bits": 4, "quant_type": "nf4", "r": 8, "alpha": 16, "dropout": 0.0,
         "modules_to_save": ["lm_head"]}  # the tiny base is random: its output layer trains too


def _linear4bit(model) -> list:
    """bitsandbytes' own 4-bit layers (peft's LoRA wrapper around one has the same class name)."""
    import bitsandbytes as bnb

    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


class QuantProbe(Probe):
    """The Probe's facts plus the quantized layers as the trainer got them."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, **kwargs)
        layers = _linear4bit(model)
        self.facts.update(
            linear4bit=len(layers),
            quant_devices={m.weight.device.type for m in layers},
            compute_dtypes={str(m.compute_dtype).replace("torch.", "") for m in layers},
            trained={n for n, p in model.named_parameters() if p.requires_grad})


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory):
    from lmforge.config import validate
    from lmforge.stages import run

    out = tmp_path_factory.mktemp("qlora") / "run"
    tree = stage_tree("sft", out, "bf16", steps=30, adapter=QLORA, model={"dtype": "auto"},
                      train={"learning_rate": 1e-2})
    probe = QuantProbe()
    result = run(validate(tree), callbacks=[probe])
    return result, probe.facts


def test_qlora_trains_on_a_4bit_base_on_the_gpu(qlora_run):
    result, facts = qlora_run
    assert facts["linear4bit"] > 0 and facts["quant_devices"] == {"cuda"}, facts
    assert facts["compute_dtypes"] == {"bfloat16"} and facts["bf16"], facts
    assert facts["trained"] and all("lora_" in n or "modules_to_save" in n
                                    for n in facts["trained"]), sorted(facts["trained"])[:5]
    steps = losses(result.log_history)
    assert_finite(steps, "qlora loss")
    assert_falls(steps, "qlora loss")
    assert skipped_steps(result.metrics) == 0, result.metrics
    out = result.output_dir
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    print(f"\nQLoRA 4-bit on the GPU: loss {steps[0]:.3f} -> {steps[-1]:.3f}")


def _logits(model, device):
    import torch

    ids = torch.arange(5, 25, device=device)[None]
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_dequantized_merge_equals_the_float_base_plus_adapter(qlora_run, tmp_path,
                                                              tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lmforge.export.merge import export

    run = qlora_run[0].output_dir
    result = export(run, tmp_path / "merged", merge=True, dequantize=True)
    assert result.merged and result.info["dequantized"] and result.info["method"] == "qlora"
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert not _linear4bit(merged)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, str(run)).eval()
    torch.testing.assert_close(_logits(merged.to("cuda"), "cuda"),
                               _logits(reference.to("cuda"), "cuda"), atol=1e-3, rtol=0)


def test_quantized_export_loads_4bit_on_the_gpu(qlora_run, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from lmforge.export.merge import export

    run = qlora_run[0].output_dir
    export(run, tmp_path / "float", merge=True, dequantize=True)
    export(run, tmp_path / "q4", merge=True, dequantize=True, quantize=4)
    q = AutoModelForCausalLM.from_pretrained(tmp_path / "q4")
    layers = _linear4bit(q)
    assert layers and {m.weight.device.type for m in layers} == {"cuda"}
    full = AutoModelForCausalLM.from_pretrained(tmp_path / "float", dtype=torch.float32)
    want = _logits(full.to("cuda"), "cuda")
    err = ((_logits(q, "cuda") - want).abs().max() / want.abs().max()).item()
    assert 0 < err < 0.2, err  # quantization noise, not a different model
    print(f"\n4-bit export vs float export: max relative logit difference {err:.4f}")
