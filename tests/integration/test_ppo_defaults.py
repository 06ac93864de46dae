"""Stage ppo learns with its default sampling settings: no top_k (or other sampling) override is
needed (examples/tiny/ppo.yaml without its sampling line)."""

from __future__ import annotations

from lmforge import stages
from tests.integration.rl_toys import config, example, first_last, prompt_data, write_rewards


def test_ppo_learns_with_the_default_sampling_settings(tmp_path):
    base = example("ppo")
    base["ppo"] = {k: v for k, v in base["ppo"].items()
                   if k not in ("top_k", "top_p", "temperature")}
    rewards = write_rewards(tmp_path)
    cfg = config(base, tmp_path, data=prompt_data(tmp_path),
                 ppo={"reward_functions": [f"{rewards}:digit_share"], "diagnostic_samples": 0},
                 train={"max_steps": 8, "batch_size": 16, "learning_rate": 1e-3,
                        "save_steps": 8})
    m = cfg.method()
    assert (m.top_k, m.top_p, m.temperature) == (50, 1.0, 1.0)
    result = stages.run(cfg)
    first, last = first_last(result.log_history, "reward_mean")
    assert last > first + 0.1, (first, last)
