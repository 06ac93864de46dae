"""Stage ppo with several completions per prompt (ppo.num_generations): train.batch_size counts
completions (batch_size / num_generations prompts per iteration, each sampled num_generations
times side by side), the reward functions see every copy with its own columns, the leave-one-out
baseline learns the toy task, and a batch size that is not a multiple is a config error."""

from __future__ import annotations

import pytest

from lmforge import stages
from lmforge.errors import ConfigError
from tests.integration.rl_toys import config, example, first_last, prompt_data, write_rewards


def _ppo(tmp_path, **sections):
    rewards = write_rewards(tmp_path)
    base = config(example("ppo"), tmp_path, data=prompt_data(tmp_path),
                  ppo={"reward_functions": [f"{rewards}:digit_share"], "num_generations": 4,
                       "diagnostic_samples": 0})
    return config(base.model_dump(exclude_none=True), tmp_path, **sections)


def test_each_prompt_is_sampled_num_generations_times(tmp_path, monkeypatch):
    import sys

    rewards = write_rewards(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_rewards", raising=False)
    cfg = _ppo(tmp_path, ppo={"reward_functions": ["toy_rewards:recording"],
                              "reward_paths": [str(rewards.parent)]},
               train={"max_steps": 2, "batch_size": 8, "save_steps": 2})
    result = stages.run(cfg)
    import toy_rewards

    calls = toy_rewards.CALLS
    training = [c for c in calls if len(c["prompts"]) == 8]
    assert len(training) == 2  # one scoring per iteration, 8 completions each
    for call in training:
        prompts, answers = call["prompts"], call["answer"]
        groups = [prompts[i:i + 4] for i in range(0, 8, 4)]
        assert all(len(set(g)) == 1 for g in groups), prompts  # 2 prompts x 4 copies
        assert groups[0][0] != groups[1][0]
        assert answers[:4] == [answers[0]] * 4 and answers[4:] == [answers[4]] * 4
    assert "time/rollout_s" in result.log_history[0] and "time/update_s" in result.log_history[0]


def test_the_leave_one_out_baseline_raises_the_mean_reward(tmp_path):
    cfg = _ppo(tmp_path, train={"max_steps": 8, "batch_size": 16, "learning_rate": 1e-3,
                                "save_steps": 8})
    assert cfg.method().group_baseline == "leave_one_out"
    result = stages.run(cfg)
    first, last = first_last(result.log_history, "reward_mean")
    assert last > first + 0.1, (first, last)


def test_a_batch_size_that_is_not_a_multiple_is_refused(tmp_path):
    """At validation, with the config's other problems (config/crosscheck.py)."""
    with pytest.raises(ConfigError, match=r"train\.batch_size[\s\S]*multiple of "
                       r"ppo\.num_generations"):
        _ppo(tmp_path, train={"max_steps": 2, "batch_size": 6})


CONSTANT_PY = "def one(completions, **columns):\n    return [1.0] * len(completions)\n"


def test_value_epochs_fit_the_value_head_to_a_known_return(tmp_path):
    """Reward 1 for every completion, no KL penalty and a policy that barely moves (learning
    rate 1e-6, the critic's 1e-3): every return is 1, so the value head must predict 1. With
    ppo.value_epochs it is there after one rollout; without, the few optimizer steps of each
    update move it about 0.1 per rollout (0.11, 0.20, 0.30 measured)."""
    (tmp_path / "constant.py").write_text(CONSTANT_PY)
    found = {}
    for epochs in (0, 20):
        out = tmp_path / f"epochs{epochs}"
        out.mkdir()
        cfg = _ppo(out, ppo={"reward_functions": [f"{tmp_path / 'constant.py'}:one"],
                             "num_generations": 1, "value_epochs": epochs, "kl_coef": 0.0,
                             "critic_lr_ratio": 1e3},
                   train={"max_steps": 4, "batch_size": 16, "learning_rate": 1e-6,
                          "save_steps": 4})
        history = stages.run(cfg).log_history
        found[epochs] = [h["value/mean"] for h in history if "value/mean" in h]
    assert found[0][0] == 0.0 and found[20][0] == 0.0  # zero-initialised head
    assert max(found[0]) < 0.5, found
    assert found[20][1] > 0.8 and found[20][-1] == pytest.approx(1.0, abs=0.1), found
