"""Reward functions for PPO and GRPO: built-ins, the ``module:function`` resolver, a reward-model
scorer. Every reward has trl's signature ``f(completions, **columns) -> list[float]``."""

from lmforge.rewards.builtin import (BUILTINS, contains, exact_match, length_penalty, normalize,
                                     regex_match, sentiment)
from lmforge.rewards.resolve import Reward, build_rewards, resolve

__all__ = ["BUILTINS", "Reward", "build_rewards", "contains", "exact_match", "length_penalty",
           "normalize", "regex_match", "resolve", "sentiment"]
