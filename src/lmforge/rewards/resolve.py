"""Turn the config's reward references into callables.

A reference is a built-in name (``exact_match``), ``package.module:function`` importable from the
working directory or a ``reward_paths`` directory, or ``path/to/file.py:function``. Every failure
(module or file missing, no such function, not callable, import error inside the module) is a
ConfigError that says which reference and why.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Callable

from lmforge.errors import ConfigError
from lmforge.rewards.builtin import BUILTINS as TASK_REWARDS
from lmforge.rewards.shaping import SHAPING

BUILTINS = {**TASK_REWARDS, **SHAPING}  # every reward a config can name without a module
from lmforge.utils.resolve import resolve as resolve_ref


@dataclass
class Reward:
    name: str
    function: Callable
    weight: float = 1.0


def resolve(ref: str, paths=()) -> Callable:
    """The callable named by ``ref`` (see the module docstring)."""
    ref = ref.strip()
    if ":" not in ref:
        if ref in BUILTINS:
            return BUILTINS[ref]
        close = difflib.get_close_matches(ref, sorted(BUILTINS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"reward function '{ref}': not a built-in ({', '.join(sorted(BUILTINS))})"
                          f" and not 'module:function'{hint}")
    # shared resolver: modules only from the working directory and reward_paths
    return resolve_ref(ref, f"reward function '{ref}'", paths)


def build_rewards(specs, paths=()) -> list[Reward]:
    """Resolve every configured reward (a string or {function, weight, kwargs})."""
    rewards, problems = [], []
    for spec in specs:
        ref = spec if isinstance(spec, str) else spec.function
        try:
            fn = resolve(ref, paths)
        except ConfigError as exc:
            problems += exc.problems
            continue
        weight = 1.0 if isinstance(spec, str) else spec.weight
        if not isinstance(spec, str) and spec.kwargs:
            fn = functools.partial(fn, **spec.kwargs)
        name = ref.rpartition(":")[2]
        rewards.append(Reward(name, fn, weight))
    if problems:
        raise ConfigError(problems)
    return rewards
