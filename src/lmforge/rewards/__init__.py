"""Reward functions for PPO and GRPO: built-ins, the ``module:function`` resolver, a reward-model
scorer. Every reward has trl's signature ``f(completions, **columns) -> list[float]``."""

from lmforge.rewards.builtin import (contains, exact_match, length_penalty, normalize,
                                     regex_match, sentiment)
from lmforge.rewards.resolve import BUILTINS, Reward, build_rewards, resolve
from lmforge.rewards.shaping import length_bounds, on_task, repetition_penalty

__all__ = ["BUILTINS", "Reward", "build_rewards", "contains", "exact_match", "length_bounds",
           "length_penalty", "normalize", "on_task", "regex_match", "repetition_penalty",
           "resolve", "sentiment"]
