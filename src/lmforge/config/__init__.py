"""Typed run configuration: ``load(...)`` returns one frozen ``RunConfig``.

The names below are imported on first use, so that light modules (``config.constants``,
``config.stages``) can be imported without pydantic and the whole schema.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"RunConfig": "lmforge.config.run", "compose": "lmforge.config.loader",
            "load": "lmforge.config.loader", "to_yaml": "lmforge.config.loader",
            "validate": "lmforge.config.loader"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lmforge.config' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
