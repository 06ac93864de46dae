"""Translate other tools' training configs into an lmforge run config (``lmforge convert``).

Each converter returns a ``Conversion``: the run tree, the keys it could not map (with why) and
notes on values it changed. The names and their translations live in one table,
config/aliases.py, which ``lmforge validate`` and docs/migration.md use too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# the order of the written run file
SECTION_ORDER = ("stage", "model", "adapter", "data", "train", "eval")


@dataclass
class Conversion:
    tree: dict[str, Any] = field(default_factory=dict)
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # (foreign key, why)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (foreign key, what changed)

    def set(self, dotted: str, value: Any, origin: str) -> None:
        from lmforge.config.loader import set_path

        set_path(self.tree, dotted.split("."), value, origin=origin)

    def ordered(self) -> dict[str, Any]:
        keys = [k for k in SECTION_ORDER if k in self.tree]
        return {k: self.tree[k] for k in keys + [k for k in self.tree if k not in keys]}
