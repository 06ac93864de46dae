"""Exports that are not LoRA merges: prompt-learning adapters stay adapters (with a message), full
fine-tunes re-save in another dtype, checkpoints inside a run find the run's config."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_adapter_training import sft_config


def _logits(model):
    import torch

    ids = torch.arange(5, 25)[None]
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()


@pytest.mark.parametrize("method", ["prefix_tuning", "p_tuning"])
def test_prompt_adapters_export_as_adapters(method, tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lmforge import stages
    from lmforge.export.merge import export

    run = stages.run(sft_config(tmp_path, "run", {"type": method, "num_virtual_tokens": 4},
                                steps=2)).output_dir
    result = export(run, tmp_path / "out", merge=True, dtype="bfloat16")
    assert result.artifact == "adapter" and not result.merged
    assert any("cannot be merged" in m for m in result.messages)
    out = tmp_path / "out"
    assert (out / "adapter_config.json").is_file() and (out / "tokenizer.json").is_file()
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run)
    exported = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                         out)
    # weights cast to bfloat16: close to the float32 adapter, not equal
    diff = (_logits(exported.eval()) - _logits(ref.eval())).abs().max()
    assert diff < 0.05
    from safetensors import safe_open

    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.bfloat16 for k in f.keys())
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and method in card
    with pytest.raises(Exception, match="cannot be merged"):
        export(run, tmp_path / "q", merge=True, quantize=4)


def test_full_run_exports_in_another_dtype(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from lmforge import stages
    from lmforge.export.merge import export

    run = stages.run(sft_config(tmp_path, "run", {"type": "full"}, steps=2)).output_dir
    result = export(run, tmp_path / "bf16", dtype="bfloat16")
    assert result.artifact == "model" and result.info["method"] == "full"
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")
    trained = AutoModelForCausalLM.from_pretrained(run)
    assert model.dtype == torch.bfloat16
    torch.testing.assert_close(model.lm_head.weight.float(), trained.lm_head.weight,
                               atol=1e-2, rtol=1e-2)
    info = json.loads((tmp_path / "bf16" / "lmforge_export.json").read_text())
    assert info["dtype"] == "bfloat16" and info["source"] == str(run)


def test_checkpoint_inside_a_run_uses_the_run_config(tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lmforge import stages
    from lmforge.export.merge import export
    from lmforge.export.source import inspect_source

    cfg = sft_config(tmp_path, "run", {"type": "lora", "r": 4}, steps=2,
                     train={"save_steps": 2})
    run = stages.run(cfg).output_dir
    ckpt = run / "checkpoint-2"
    src = inspect_source(ckpt)
    assert src.base.path == "builtin:tiny-llama" and src.run_dir == run and src.stage == "sft"
    export(ckpt, tmp_path / "merged", merge=True)
    ref = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), ckpt)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    torch.testing.assert_close(_logits(merged), _logits(ref.eval()), atol=1e-4, rtol=0)
    with pytest.raises(Exception, match="not empty"):
        export(ckpt, tmp_path / "merged", merge=True)
