"""Stage grpo (trl's GRPOTrainer): the mean reward rises on a toy task, and reward functions
receive the completions plus the data's extra columns by name."""

from __future__ import annotations

import sys

import pytest

from lmforge import stages
from lmforge.errors import ConfigError
from tests.integration.rl_toys import config, example, first_last, prompt_data, write_rewards


def test_grpo_raises_the_mean_reward(tmp_path):
    rewards = write_rewards(tmp_path)
    cfg = config(example("grpo"), tmp_path, data=prompt_data(tmp_path),
                 grpo={"reward_functions": [f"{rewards}:digit_share"]},
                 train={"max_steps": 12, "batch_size": 16, "learning_rate": 2e-2,
                        "save_steps": 12, "logging_steps": 1})
    result = stages.run(cfg)
    first, last = first_last(result.log_history, "reward")
    assert last > first + 0.1, (first, last)
    m = result.metrics
    assert m["reward_last"] > m["reward_first"]
    for name in ("metrics.json", "loss.png", "reward.png", "model.safetensors",
                 "checkpoint-12"):
        assert (result.output_dir / name).exists(), name


def test_grpo_reward_functions_get_columns_and_builtins_take_kwargs(tmp_path, monkeypatch):
    rewards = write_rewards(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_rewards", raising=False)
    cfg = config(example("grpo"), tmp_path, data=prompt_data(tmp_path, 8),
                 grpo={"reward_functions": [
                     "toy_rewards:recording",
                     {"function": "exact_match", "weight": 0.5, "kwargs": {"column": "answer"}}],
                     "reward_paths": [str(rewards.parent)]},
                 train={"max_steps": 2, "batch_size": 8, "save_steps": 2})
    result = stages.run(cfg)
    import toy_rewards

    assert toy_rewards.CALLS, "the custom reward function was never called"
    call = toy_rewards.CALLS[0]
    assert len(call["answer"]) == 8 and all(a.isdigit() for a in call["answer"])
    assert call["prompts"][0].startswith("<|im_start|>user\nWrite about ")
    assert call["prompts"][0].endswith("<|im_start|>assistant\n")
    assert "completion_ids" in call["keys"]
    assert any("rewards/exact_match/mean" in h for h in result.log_history)


def test_grpo_batch_must_hold_whole_groups(tmp_path):
    from lmforge.stages.grpo import build_args

    with pytest.raises(ConfigError, match=r"train\.batch_size[\s\S]*batch_size x grad_accum "
                       r"\(6\)[\s\S]*multiple of grpo\.num_generations"):
        config(example("grpo"), tmp_path, train={"batch_size": 6})  # refused at validation
    cfg = config(example("grpo"), tmp_path, train={"batch_size": 8, "eval_batch_size": 6})
    with pytest.raises(ConfigError, match="eval_batch_size: 6 must be a multiple of "
                       "grpo.num_generations"):
        build_args(cfg, has_eval=True)
