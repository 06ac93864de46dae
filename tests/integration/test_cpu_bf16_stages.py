"""LoRA stages under CPU bf16 autocast with the frozen linear weights stored in bfloat16
(``training/frozen_cast.py``): every forward pass of the run must happen under autocast, or a
bfloat16 weight meets float32 inputs. Checked on the stages with passes of their own outside the
training step: pt's packing probe, dpo's reference pass, and grpo (trl generates without
autocast, so its weights stay float32). Skipped on CPUs without native bf16."""

from __future__ import annotations

import pytest

from lmforge.training.device import cpu_native_bf16
from tests.gpu.gpu_runs import losses, run_stage, stage_tree

pytestmark = pytest.mark.skipif(not cpu_native_bf16(),
                                reason="this CPU has no native bf16 (avx512_bf16 / amx_bf16)")

LORA = {"type": "lora", "r": 4, "target_modules": "all-linear"}


@pytest.mark.parametrize("stage, cast", [("pt", True), ("dpo", True), ("grpo", False)])
def test_lora_stage_trains_with_frozen_weights_in_bf16(stage, cast, tmp_path):
    import torch

    tree = stage_tree(stage, tmp_path / "run", "bf16", steps=2, adapter=LORA,
                      model={"dtype": "float32"})
    result, probe = run_stage(tree)
    assert result.metrics["global_step"] == 2
    assert all(torch.isfinite(torch.tensor(v)) for v in losses(result.log_history))
    assert probe.facts["bf16"]
    assert (result.output_dir / "adapter_config.json").is_file()
    assert probe.facts["trained_dtypes"] == {"float32"}
    # the frozen linears in bfloat16, the embeddings and norms float32; or all float32
    assert probe.facts["frozen_dtypes"] == ({"bfloat16", "float32"} if cast else {"float32"})
