"""Merge invariant: the merged export computes what base + adapter computes (fp32, 1e-4).

Adapters get non-zero weights everywhere (LoRA/DoRA with init_lora_weights=False, AdaLoRA with
random singular values), so a merge that dropped or mis-scaled any part would show. The export is
loaded back with plain ``AutoModelForCausalLM`` — no peft involved.
"""

from __future__ import annotations

import pytest


def _probe():
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randint(5, 1000, (2, 24), generator=g)


def _logits(model):
    import torch

    with torch.no_grad():
        return model(input_ids=_probe()).logits.float()


def _adapter(kind: str):
    from peft import AdaLoraConfig, LoraConfig

    if kind == "adalora":
        return AdaLoraConfig(task_type="CAUSAL_LM", init_r=4, target_r=2, lora_alpha=8,
                             target_modules="all-linear", total_step=10)
    return LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear",
                      init_lora_weights=False, use_dora=kind == "dora",
                      use_rslora=kind == "rslora",
                      modules_to_save=["lm_head"] if kind == "lora" else None)


def _save_adapter(kind: str, base_dir, out):
    """A random (non-zero) adapter of ``kind`` on the tiny model, saved to ``out``; returns the
    reference logits of base + adapter."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), _adapter(kind))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_E" in name or "modules_to_save" in name:
                p.add_(torch.randn_like(p) * (2.0 if "lora_E" in name else 0.1))
    model.eval()
    reference = _logits(model)
    model.save_pretrained(out)
    return reference


@pytest.mark.parametrize("kind", ["lora", "dora", "rslora", "adalora"])
def test_merged_export_equals_base_plus_adapter(kind, tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from lmforge.export.merge import export

    adapter = tmp_path / "adapter"
    reference = _save_adapter(kind, tiny_model_dir, adapter)
    base_logits = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    assert (reference - base_logits).abs().max() > 1e-2, "the adapter must change the output"
    # a plain peft reload agrees with the in-memory adapter (the reference is right)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                         adapter).eval()
    torch.testing.assert_close(_logits(reloaded), reference, atol=1e-5, rtol=0)

    result = export(adapter, tmp_path / "merged", merge=True)
    assert result.merged and result.artifact == "model"
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert merged.dtype == torch.float32
    torch.testing.assert_close(_logits(merged), reference, atol=1e-4, rtol=0)


def test_merged_export_in_bfloat16(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from lmforge.export.merge import export

    reference = _save_adapter("lora", tiny_model_dir, tmp_path / "adapter")
    export(tmp_path / "adapter", tmp_path / "bf16", merge=True, dtype="bfloat16")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16")
    assert merged.dtype == torch.bfloat16
    # bf16 rounding only: close to the fp32 reference, not equal
    assert (_logits(merged) - reference).abs().max() < 0.05
