"""QLoRA on the CPU (bitsandbytes 4-bit and 8-bit), then export: merging into the quantized base is
refused, ``--dequantize`` merges into the unquantized base, ``--quantize`` saves a bitsandbytes
model that plain transformers loads quantized."""

from __future__ import annotations

import pytest

from lmforge.export.merge import ExportError


@pytest.fixture(scope="module", params=[4, 8])
def qlora_run(request, tmp_path_factory):
    from lmforge import stages
    from tests.integration.test_adapter_training import sft_config

    tmp = tmp_path_factory.mktemp(f"qlora{request.param}")
    cfg = sft_config(tmp, "run", {"type": "qlora", "r": 4, "bits": request.param}, steps=3)
    result = stages.run(cfg)
    return request.param, result.output_dir


def _logits(model):
    import torch

    ids = torch.arange(5, 25)[None]
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def test_merge_into_quantized_base_is_refused(qlora_run, tmp_path):
    from lmforge.export.merge import export

    bits, run = qlora_run
    with pytest.raises(ExportError, match=f"{bits}-bit quantized base") as err:
        export(run, tmp_path / "out", merge=True)
    assert "--dequantize" in err.value.hint
    assert not (tmp_path / "out").exists()


def test_dequantized_merge_equals_float_base_plus_adapter(qlora_run, tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lmforge.export.merge import export

    bits, run = qlora_run
    result = export(run, tmp_path / "merged", merge=True, dequantize=True)
    assert result.merged and result.info["dequantized"] and result.info["method"] == "qlora"
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert "Linear4bit" not in {type(m).__name__ for m in merged.modules()}
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                          run).eval()
    torch.testing.assert_close(_logits(merged), _logits(reference), atol=1e-4, rtol=0)
    card = (tmp_path / "merged" / "README.md").read_text()
    assert "qlora" in card and "de-quantized" in card


def test_quantized_export_loads_quantized(qlora_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from lmforge.export.merge import export

    bits, run = qlora_run
    export(run, tmp_path / "float", merge=True, dequantize=True)
    export(run, tmp_path / "q", merge=True, dequantize=True, quantize=bits)
    q = AutoModelForCausalLM.from_pretrained(tmp_path / "q")
    layer = "Linear4bit" if bits == 4 else "Linear8bitLt"
    assert layer in {type(m).__name__ for m in q.modules()}
    assert (tmp_path / "q" / "chat_template.jinja").is_file()
    full = _logits(AutoModelForCausalLM.from_pretrained(tmp_path / "float"))
    err = (_logits(q) - full).abs().max() / full.abs().max()
    assert 0 < err < 0.2  # quantization noise, not a different model


def test_quantize_needs_merge_for_adapters(qlora_run, tmp_path):
    from lmforge.export.merge import export

    _, run = qlora_run
    with pytest.raises(ExportError, match="--quantize needs --merge"):
        export(run, tmp_path / "q", quantize=4)
