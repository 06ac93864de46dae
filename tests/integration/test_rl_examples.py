"""The shipped examples/tiny configs of the preference and RL stages: each one validates, its
data (and custom reward file) loads, and it trains end to end — shortened here to one step
without evaluation; the stage tests run these configs on toy tasks and check that they learn,
and the e2e tier runs one unchanged from the CLI."""

from __future__ import annotations

import pytest

from lmforge import stages
from tests.conftest import REPO
from tests.integration.rl_toys import config, example

CURVE = {"rm": "accuracy.png", "dpo": "margins.png", "kto": "margins.png",
         "orpo": "margins.png", "ppo": "reward.png", "grpo": "reward.png"}


@pytest.mark.parametrize("stage", ["rm", "dpo", "kto", "orpo", "ppo", "grpo"])
def test_example_runs_end_to_end(stage, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the examples use paths relative to the repository
    steps = {"max_steps": 1, "save_steps": 1, "logging_steps": 1}
    cfg = config(example(stage), tmp_path, train=steps, data={"eval": None})
    assert cfg.stage == stage
    result = stages.run(cfg)
    out = result.output_dir
    assert result.metrics["global_step"] == 1
    for name in ("metrics.json", "loss.png", CURVE[stage], "lmforge_config.yaml",
                 "tokenizer.json", "checkpoint-1"):
        assert (out / name).exists(), name
    assert (out / "model.safetensors").is_file()
    from transformers import AutoConfig

    arch = AutoConfig.from_pretrained(out).architectures[0]
    assert arch == ("LlamaForSequenceClassification" if stage == "rm" else "LlamaForCausalLM")
