"""ppo.kl_penalty: loss puts the KL to the reference in the policy loss (as GRPO's beta) instead of
the per-token rewards: the returns then carry the score alone, the policy still learns the toy
task, the pull towards the reference holds, and a k1 estimator (whose gradient is not the KL's)
is a config error."""

from __future__ import annotations

import pytest

from lmforge import stages
from tests.integration.rl_toys import config, example, first_last, prompt_data, write_rewards


def _ppo(tmp_path, **ppo):
    rewards = write_rewards(tmp_path)
    return config(example("ppo"), tmp_path, data=prompt_data(tmp_path),
                  ppo={"reward_functions": [f"{rewards}:digit_share"], "diagnostic_samples": 0,
                       **ppo},
                  train={"max_steps": 8, "batch_size": 16, "learning_rate": 1e-3,
                         "save_steps": 8})


def test_kl_in_the_loss_learns_and_keeps_the_returns_free_of_the_kl(tmp_path):
    cfg = _ppo(tmp_path, kl_penalty="loss", kl_estimator="k3", kl_coef=0.01)
    history = stages.run(cfg).log_history
    first, last = first_last(history, "reward_mean")
    assert last > first + 0.1, (first, last)
    assert all(h["policy/kl_loss"] >= 0 for h in history)  # k3 is never negative
    # the first iteration starts at the reference; the policy moves away as it learns
    assert history[0]["policy/kl_loss"] < history[-1]["policy/kl_loss"]
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-6) and history[-1]["kl"] > 0


def test_the_kl_in_the_loss_pulls_towards_the_reference(tmp_path):
    kls = {}
    for coef in (0.0, 5.0):
        out = tmp_path / f"coef{coef}"
        out.mkdir()
        history = stages.run(_ppo(out, kl_penalty="loss", kl_estimator="k3",
                                  kl_coef=coef)).log_history
        kls[coef] = sum(h["kl"] for h in history[-3:]) / 3
    assert kls[5.0] < 0.5 * kls[0.0], kls


def test_kl_in_the_loss_refuses_the_k1_estimator(tmp_path):
    from lmforge.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="k3 or k2"):
        _ppo(tmp_path, kl_penalty="loss", kl_estimator="k1")
