"""All configured rewards of a run as one scorer: weighted sum of reward functions and the reward
model, with per-function means for logging. Used by the PPO loop (GRPO hands the same callables
and weights to trl)."""

from __future__ import annotations

import math

from lmforge.errors import ConfigError, TrainingError
from lmforge.rewards.resolve import Reward, build_rewards


def configured_rewards(method, device=None) -> list[Reward]:
    """Reward functions of a ppo:/grpo: block, plus the reward model when one is given."""
    rewards = build_rewards(method.reward_functions, method.reward_paths)
    if method.reward_model:
        from lmforge.rewards.model import RewardModelScorer

        rewards.append(Reward("reward_model", RewardModelScorer(method.reward_model, device),
                              method.reward_model_weight))
    if not rewards:
        raise ConfigError("no reward: give reward_functions and/or reward_model")
    return rewards


def reward_weights(method) -> list[float]:
    """The weights of ``configured_rewards(method)``, in the same order, without loading them."""
    weights = [1.0 if isinstance(s, str) else s.weight for s in method.reward_functions]
    return weights + ([method.reward_model_weight] if method.reward_model else [])


def _check(name: str, values, n: int) -> list[float]:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise TrainingError(f"reward function '{name}' returned {got} values for {n} "
                            "completions; it must return one float per completion")
    out = []
    for v in values:
        if v is None:
            out.append(math.nan)  # trl's convention: None = not applicable to this sample
            continue
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise TrainingError(f"reward function '{name}' returned {v!r}, not a number") from None
    return out


class RewardSet:
    def __init__(self, rewards: list[Reward]):
        self.rewards = rewards

    def __call__(self, prompts: list[str], completions: list[str], completion_ids: list,
                 columns: dict[str, list]) -> tuple[list[float], dict[str, float]]:
        """Total reward per completion and the mean of each reward (for the logs)."""
        n = len(completions)
        totals = [0.0] * n
        means: dict[str, float] = {}
        for r in self.rewards:
            values = _check(r.name, r.function(prompts=prompts, completions=completions,
                                               completion_ids=completion_ids, **columns), n)
            for i, v in enumerate(values):
                if not math.isnan(v):
                    totals[i] += r.weight * v
            valid = [v for v in values if not math.isnan(v)]
            means[f"rewards/{r.name}"] = sum(valid) / len(valid) if valid else math.nan
        return totals, means
