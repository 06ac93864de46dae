"""The reward-hacking diagnostics run inside stages grpo and ppo: at the start, at every
evaluation and at the end, into the log, the evaluation entries of the history and metrics.json."""

from __future__ import annotations

import json
import logging

import pytest

from lmforge import stages
from tests.conftest import write_jsonl
from tests.integration.rl_toys import config, example, prompt_data, prompt_rows, write_rewards

KEYS = ("diag_distinct_1", "diag_distinct_2", "diag_top_opening_share", "diag_mean_words")


def _data(tmp_path):
    return dict(prompt_data(tmp_path, 16), eval=str(write_jsonl(tmp_path / "eval.jsonl",
                                                                prompt_rows(8, seed=5))))


@pytest.mark.parametrize("stage", ["grpo", "ppo"])
def test_diagnostics_at_every_evaluation_and_in_metrics(stage, tmp_path, caplog):
    rewards = write_rewards(tmp_path)
    cfg = config(example(stage), tmp_path, data=_data(tmp_path),
                 adapter={"type": "lora", "r": 4, "alpha": 8},
                 **{stage: {"reward_functions": [f"{rewards}:digit_share"],
                            "diagnostic_samples": 6}},
                 train={"max_steps": 2, "batch_size": 8, "save_steps": 2, "eval_steps": 1,
                        "logging_steps": 1})
    with caplog.at_level(logging.INFO, logger="lmforge.rl.diagnostics"):
        result = stages.run(cfg)
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    for key in KEYS + ("diag_kl_to_base",):  # LoRA: the base is the adapter switched off
        assert 0 <= metrics[key] <= (1 if "share" in key or "distinct" in key else 100), key
    assert metrics["diag_kl_to_base_start"] == pytest.approx(0.0, abs=1e-5)  # policy == base
    assert isinstance(metrics["diag_top_opening"], str)
    evals = [h for h in result.log_history if any(k.startswith("eval_") for k in h)]
    assert [h["step"] for h in evals if "diag_distinct_2" in h][-2:] == [1, 2]
    lines = [r.getMessage() for r in caplog.records if "diagnostics at step" in r.getMessage()]
    assert any("step 0 (6 samples)" in line for line in lines)
    assert any("step 2 (6 samples)" in line for line in lines)


def test_diagnostics_can_be_switched_off(tmp_path):
    rewards = write_rewards(tmp_path)
    cfg = config(example("ppo"), tmp_path, data=prompt_data(tmp_path, 8),
                 ppo={"reward_functions": [f"{rewards}:digit_share"], "diagnostic_samples": 0},
                 train={"max_steps": 1, "batch_size": 8, "save_steps": 1})
    result = stages.run(cfg)
    assert not any(k.startswith("diag_") for k in result.metrics)
