"""Turn the config's reward references into callables.

A reference is a built-in name (``exact_match``), ``package.module:function`` importable from the
working directory or a ``reward_paths`` directory, or ``path/to/file.py:function``. Every failure
(module or file missing, no such function, not callable, import error inside the module) is a
ConfigError that says which reference and why.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lmforge.errors import ConfigError
from lmforge.rewards.builtin import BUILTINS


@dataclass
class Reward:
    name: str
    function: Callable
    weight: float = 1.0


def _search_dirs(paths) -> list[str]:
    return [os.getcwd()] + [str(Path(p).resolve()) for p in paths]


def _load_file(ref: str, file: str, paths) -> object:
    candidates = [Path(file)] + [Path(d) / file for d in _search_dirs(paths)[1:]]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise ConfigError(f"reward function '{ref}': file '{file}' not found (searched: "
                          f"{', '.join(_search_dirs(paths))})")
    name = f"lmforge_reward_{abs(hash(str(found.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, found)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"reward function '{ref}': running {found} failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    return module


def _import(ref: str, module_name: str, paths) -> object:
    for d in reversed(_search_dirs(paths)):
        if d not in sys.path:
            sys.path.insert(0, d)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ConfigError(f"reward function '{ref}': module '{module_name}' not found "
                              f"(searched the Python path and: "
                              f"{', '.join(_search_dirs(paths))})") from None
        raise ConfigError(f"reward function '{ref}': importing '{module_name}' failed: "
                          f"{exc}") from exc
    except Exception as exc:
        raise ConfigError(f"reward function '{ref}': importing '{module_name}' failed: "
                          f"{type(exc).__name__}: {exc}") from exc


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
    where, _, attr = ref.rpartition(":")
    if not where or not attr:
        raise ConfigError(f"reward function '{ref}': expected 'module:function'")
    module = (_load_file(ref, where, paths) if where.endswith(".py")
              else _import(ref, where, paths))
    fn = getattr(module, attr, None)
    if fn is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"reward function '{ref}': '{where}' has no attribute '{attr}'{hint}")
    if not callable(fn):
        raise ConfigError(f"reward function '{ref}': '{attr}' is a {type(fn).__name__}, "
                          "not a function")
    return fn


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
