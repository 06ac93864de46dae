"""Every stage trains on a CUDA GPU in bf16 and in fp16 (marker ``gpu``; skipped without CUDA).

Each stage runs its shipped example (examples/tiny/<stage>.yaml) on the built-in tiny model for a
few steps, with the weights in the half type of the precision: bfloat16 with bf16, float16 with
fp16 (as on GPUs without native bf16; see WEIGHTS in gpu_runs.py). Checked:

- the run really trained on the GPU in that precision (TrainingArguments bf16/fp16, every weight
  on CUDA);
- every logged loss is finite and no step was skipped as non-finite; for the stages whose loss
  measures progress (pt, sft, rm, dpo, kto, orpo) it falls over the run;
- the saved model loads with plain transformers on the GPU and computes finite logits.

Stage ppo refuses fp16 (its own loop has no loss scaler): that refusal is checked instead.
SmolLM2-135M-Instruct (the real model, when its asset is installed): LoRA SFT in bf16 and fp16
falls in loss, and the saved adapter answers through ChatEngine on the GPU.
"""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.gpu.gpu_runs import (GPU, SMOLLM2, STAGES, WEIGHTS, assert_falls, assert_finite,
                                losses, needs_native_bf16, needs_smollm2, run_stage,
                                skipped_steps, stage_tree)

pytestmark = GPU

LOSS_FALLS = ("pt", "sft", "rm", "dpo", "kto", "orpo")
PRECISIONS = [pytest.param("bf16", marks=needs_native_bf16), "fp16"]


def _artifact_logits(out, stage: str, dtype: str):
    """Logits of the saved model, loaded by plain transformers on the GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if stage == "rm" else AutoModelForCausalLM
    model = cls.from_pretrained(str(out), dtype=getattr(torch, dtype)).to("cuda").eval()
    ids = torch.arange(5, 25, device="cuda")[None]
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("stage", STAGES)
def test_stage_trains_on_the_gpu(stage, precision, tmp_path):
    import torch

    from lmforge.errors import ConfigError

    tree = stage_tree(stage, tmp_path / "run", precision)
    if stage == "ppo" and precision == "fp16":
        with pytest.raises(ConfigError, match="fp16 is not supported by stage ppo"):
            run_stage(tree)
        return
    result, probe = run_stage(tree)
    facts = probe.facts
    assert facts["devices"] == {"cuda"}, facts
    assert (facts["bf16"], facts["fp16"]) == (precision == "bf16", precision == "fp16"), facts
    steps = losses(result.log_history)
    assert_finite(steps, f"{stage}/{precision} loss")
    if stage in LOSS_FALLS:
        assert_falls(steps, f"{stage}/{precision} loss")
    assert skipped_steps(result.metrics) == 0, result.metrics
    assert result.metrics["global_step"] == tree["train"]["max_steps"]
    out = result.output_dir
    assert (out / "model.safetensors").is_file() and (out / "metrics.json").is_file()
    logits = _artifact_logits(out, stage, WEIGHTS[precision])
    assert torch.isfinite(logits).all(), f"{stage}/{precision}: the saved model's logits"
    if stage == "ppo":
        assert_finite(losses(result.log_history, "reward_mean"), "ppo reward_mean")
    print(f"\n{stage}/{precision}: loss {steps[0]:.4f} -> {steps[-1]:.4f} in {len(steps)} steps")


def _smollm2_tree(out, precision: str) -> dict:
    return {"stage": "sft", "model": {"path": SMOLLM2, "dtype": WEIGHTS[precision]},
            "adapter": {"type": "lora", "r": 8, "alpha": 16, "dropout": 0.0,
                        "target_modules": "all-linear"},
            "data": {"train": str(REPO / "examples/data/toy_train.jsonl"), "format": "alpaca",
                     "max_length": 128},
            "train": {"output_dir": str(out), "max_steps": 12, "save_steps": 12, "batch_size": 8,
                      "learning_rate": 1e-3, "lr_scheduler": "constant",
                      "precision": precision, "logging_steps": 1, "report_to": ["none"],
                      "seed": 0}}


@needs_smollm2
@pytest.mark.parametrize("precision", PRECISIONS)
def test_smollm2_lora_sft_on_the_gpu(precision, tmp_path):
    from lmforge.infer.engine import ChatEngine

    result, probe = run_stage(_smollm2_tree(tmp_path / "run", precision))
    facts = probe.facts
    assert facts["devices"] == {"cuda"} and facts["frozen_dtypes"] == {WEIGHTS[precision]}, facts
    assert facts["trained_dtypes"] == {"float32"}, facts  # peft keeps adapters in float32
    steps = losses(result.log_history)
    assert_finite(steps, f"smollm2/{precision} loss")
    assert_falls(steps, f"smollm2/{precision} loss")
    assert skipped_steps(result.metrics) == 0, result.metrics
    out = result.output_dir
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    engine = ChatEngine.load(str(out), dtype=WEIGHTS[precision])
    assert engine.device.type == "cuda"
    answers = engine.generate([[{"role": "user", "content": "Colour of plum?"}],
                               [{"role": "user", "content": "Write 6 as a word."}]],
                              max_new_tokens=8)
    assert all(a.choices[0].token_ids for a in answers)
    print(f"\nSmolLM2 LoRA {precision}: loss {steps[0]:.3f} -> {steps[-1]:.3f}; answers "
          f"{[a.text for a in answers]}")
