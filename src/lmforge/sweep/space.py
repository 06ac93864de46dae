"""The search space: a YAML mapping from config paths (as in overrides) to a distribution.

    train.learning_rate: {log_uniform: [1.0e-5, 1.0e-3]}
    train.warmup_ratio: {uniform: [0.0, 0.1]}
    train.batch_size: {int: [2, 8]}            # optional: step: 2, log: true
    adapter.r: {choice: [4, 8, 16]}

Optuna parameter names are the dotted paths themselves, so a trial's params read like overrides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.errors import ConfigError

KINDS = ("log_uniform", "uniform", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    path: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: int | None = None
    log: bool = False
    choices: tuple = field(default_factory=tuple)

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high),
                                     step=self.step or 1, log=self.log)
        return trial.suggest_float(self.path, float(self.low), float(self.high),
                                   log=self.kind == "log_uniform")

    def grid(self) -> list:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, self.step or 1))
        raise ConfigError(f"{self.path}: a grid sweep needs 'choice' or 'int' dimensions, "
                          f"not '{self.kind}'", hint="use --sampler tpe or random")

    def example(self) -> Any:
        """A value inside the dimension (to check the path against the config up front)."""
        return self.choices[0] if self.kind == "choice" else self.low


def _number(where: str, value, integer: bool = False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool):
        raise ConfigError(f"{where}: expected {'an integer' if integer else 'a number'}, "
                          f"got {value!r}")
    return value


def parse_dimension(path: str, spec, where: str) -> Dimension:
    if not isinstance(spec, dict) or len([k for k in spec if k in KINDS]) != 1:
        raise ConfigError(f"{where}: expected a mapping with one of {', '.join(KINDS)} (e.g. "
                          "{log_uniform: [1.0e-5, 1.0e-3]}), got " + repr(spec))
    kind = next(k for k in spec if k in KINDS)
    unknown = set(spec) - {kind, "step", "log"}
    if unknown or (set(spec) & {"step", "log"} and kind != "int"):
        raise ConfigError(f"{where}: unexpected keys {sorted(set(spec) - {kind})}")
    value = spec[kind]
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{where}: choice needs a non-empty list, got {value!r}")
        return Dimension(path, kind, choices=tuple(value))
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(f"{where}: {kind} needs [low, high], got {value!r}")
    integer = kind == "int"
    low, high = (_number(where, v, integer) for v in value)
    if low >= high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    log = bool(spec.get("log", False)) or kind == "log_uniform"
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None:
        _number(where, step, integer=True)
    return Dimension(path, kind, low, high, step, log=bool(spec.get("log", False)))


def parse_space(tree: dict, source: str = "space") -> list[Dimension]:
    if not isinstance(tree, dict) or not tree:
        raise ConfigError(f"{source}: expected a mapping of config paths to distributions")
    dims = []
    for path, spec in tree.items():
        parts = str(path).split(".")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"{source}: '{path}' is not a dotted config path (e.g. "
                              "train.learning_rate)")
        dims.append(parse_dimension(str(path), spec, f"{source}: {path}"))
    return dims


def load_space(path: str | Path) -> tuple[list[Dimension], dict]:
    """(dimensions, the raw mapping) from a space YAML file."""
    from lmforge.config.loader import read_yaml

    raw = read_yaml(path, "search space")
    return parse_space(raw, str(path)), raw


def suggest(trial, dims: list[Dimension]) -> dict[str, Any]:
    return {d.path: d.suggest(trial) for d in dims}


def grid(dims: list[Dimension]) -> dict[str, list]:
    return {d.path: d.grid() for d in dims}
