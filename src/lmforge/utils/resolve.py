"""The one resolver for user code named in a config: ``"package.module:name"`` or
``"path/to/file.py:name"`` (reward functions, metrics, data classes).

Why our own: ``importlib.import_module`` imports whatever the Python path offers, so a config
could name any installed module (``os:system``) or pick up a same-named module from elsewhere.
Here a *module* name is looked up only in the working directory and the directories the config
lists (e.g. ``grpo.reward_paths``); a *file* is the path written (relative to the working
directory or one of those directories). Every failure is a ConfigError that names the reference,
where it looked and why: not found, an installed module, a name clash with an already imported
module, an exception while importing, a missing attribute (with a did-you-mean), or an object of
the wrong kind.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterable

from lmforge.errors import ConfigError

_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def search_dirs(paths: Iterable[str] = ()) -> list[str]:
    """The working directory, then the configured directories (absolute, de-duplicated)."""
    out: list[str] = []
    for d in [os.getcwd(), *paths]:
        full = str(Path(d).expanduser().resolve())
        if full not in out:
            out.append(full)
    return out


def _fail(label: str, text: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"{label}: {text}", hint)


def load_file(path: str, label: str, paths: Iterable[str] = ()) -> ModuleType:
    """Run a ``.py`` file as a module (once per resolved path)."""
    dirs = search_dirs(paths)
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [Path(d) / p for d in dirs]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise _fail(label, f"file '{path}' not found (searched: {', '.join(dirs)})")
    found = found.resolve()
    name = "lmforge_user_" + hashlib.sha1(str(found).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, found)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SystemExit in a user file must not end the run silently
        del sys.modules[name]
        raise _fail(label, f"running {found} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _inside(file: str | None, dirs: list[str]) -> bool:
    if not file:
        return False
    full = Path(file).resolve()
    return any(full.is_relative_to(d) for d in dirs)


def _module_dirs(module: ModuleType) -> list[str]:
    files = [getattr(module, "__file__", None)]
    files += [str(Path(p) / "__init__.py") for p in getattr(module, "__path__", None) or []]
    return [f for f in files if f]


def load_module(name: str, label: str, paths: Iterable[str] = ()) -> ModuleType:
    """Import ``name`` (dotted) found in the working directory or a configured directory."""
    if not _MODULE.match(name):
        raise _fail(label, f"'{name}' is not a module name (expected 'package.module' or "
                    "'file.py')")
    dirs = search_dirs(paths)
    top = name.split(".")[0]
    spec = importlib.machinery.PathFinder.find_spec(top, dirs)
    if spec is None:
        installed = top in sys.builtin_module_names or importlib.util.find_spec(top) is not None
        why = (f" ('{top}' is an installed module; user code is imported only from these "
               "directories)" if installed else "")
        raise _fail(label, f"module '{name}' not found (searched: {', '.join(dirs)}){why}",
                    "put the module in the working directory or list its directory in the "
                    "config's paths setting; or name the file: 'path/to/file.py:function'")
    loaded = sys.modules.get(top)
    if loaded is not None and not any(_inside(f, dirs) for f in _module_dirs(loaded)):
        raise _fail(label, f"a different module named '{top}' is already imported (from "
                    f"{getattr(loaded, '__file__', None) or 'built-in'}); rename your module")
    for d in reversed(dirs):  # its own imports of sibling modules must work
        if d not in sys.path:
            sys.path.insert(0, d)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise _fail(label, f"module '{name}' not found (searched: "
                        f"{', '.join(dirs)})") from None
        raise _fail(label, f"importing '{name}' failed: {exc}") from exc
    except BaseException as exc:
        raise _fail(label, f"importing '{name}' failed: {type(exc).__name__}: {exc}") from exc


def split_ref(ref: str, label: str) -> tuple[str, str]:
    where, _, attr = ref.strip().rpartition(":")
    if not where or not attr or not attr.isidentifier():
        raise _fail(label, f"expected 'module:name' or 'path/to/file.py:name', got '{ref}'")
    return where, attr


def load_where(where: str, label: str, paths: Iterable[str] = ()) -> ModuleType:
    if where.endswith(".py"):
        return load_file(where, label, paths)
    return load_module(where, label, paths)


def resolve(ref: str, label: str, paths: Iterable[str] = (), kind: str = "function") -> object:
    """The object ``ref`` names; ``kind`` is 'function' (any callable) or 'class'."""
    where, attr = split_ref(ref, label)
    module = load_where(where, label, paths)
    obj = getattr(module, attr, None)
    if obj is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise _fail(label, f"'{where}' has no attribute '{attr}'{hint}")
    if kind == "class" and not isinstance(obj, type):
        raise _fail(label, f"'{attr}' is a {type(obj).__name__}, not a class")
    if kind == "function" and not callable(obj):
        raise _fail(label, f"'{attr}' is a {type(obj).__name__}, not a function")
    return obj
