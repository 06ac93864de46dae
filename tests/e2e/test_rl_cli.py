"""`lmforge train examples/tiny/ppo.yaml` as a user runs it (lmforge's own PPO loop): exit 0,
a loadable model, metrics with the reward before and after, the curves."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_train_ppo_example_from_the_cli(tmp_path):
    out = tmp_path / "ppo"
    res = run_cli("train", "examples/tiny/ppo.yaml", f"train.output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "done: ppo run saved in" in res.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 8
    assert metrics["reward_mean_last"] > metrics["reward_mean_first"]
    assert "eval_reward_mean" in metrics
    for name in ("loss.png", "reward.png", "model.safetensors", "critic/value_head.safetensors",
                 "checkpoint-8/ppo_state.json"):
        assert (out / name).exists(), name
    res = run_cli("train", "examples/tiny/ppo.yaml", "ppo.reward_functions=[]")
    assert res.returncode == 2 and "reward_functions" in res.stderr


def test_validate_builds_the_stage_arguments_class():
    # use_weighting is a DPOConfig argument (not a TrainingArguments one): validate knows it
    res = run_cli("validate", "examples/tiny/dpo.yaml", "train.extra.use_weighting=true")
    assert res.returncode == 0, res.stderr[-2000:]
