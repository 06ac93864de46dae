"""One error hierarchy. The CLI prints ``error: <message>`` plus the hint and exits non-zero.

Every error carries a ``hint`` telling the user what to do about it; ``exit_code`` is what the CLI
returns (2 for configuration problems, as argparse does, 1 otherwise).
"""

from __future__ import annotations


class LmforgeError(Exception):
    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class ConfigError(LmforgeError):
    """One or more configuration problems; ``problems`` holds each as ``dotted.path: message``."""

    exit_code = 2
    default_hint = "fix the keys above (lmforge validate checks a config without loading a model)"

    def __init__(self, problems: list[str] | str, hint: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        n = len(self.problems)
        head = "invalid configuration" if n != 1 else "invalid configuration: 1 problem"
        if n > 1:
            head = f"invalid configuration: {n} problems"
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in self.problems), hint)


class DataError(LmforgeError):
    """A bad data row or file: names the file, the line (or row index) and the field."""

    default_hint = "fix the row, map the column with data.columns, or set data.skip_invalid: true"

    def __init__(self, reason: str, file: str | None = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None):
        self.file, self.line, self.field, self.reason = file, line, field, reason
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        what = f"field '{field}' {reason}" if field else reason
        super().__init__(where + what, hint)


class ModelError(LmforgeError):
    default_hint = "check model.path (a local directory, a hub id in the cache, or builtin:<name>)"


class DependencyError(LmforgeError):
    """An optional dependency is missing; the hint names the extra that installs it."""

    def __init__(self, package: str, extra: str, feature: str):
        super().__init__(
            f"{feature} needs the package '{package}', which is not installed",
            f"pip install 'lmforge[{extra}]'  (or: pip install {package})",
        )
        self.package, self.extra = package, extra


class TrainingError(LmforgeError):
    default_hint = "see the log above; checkpoints already written are kept"


def require(module: str, extra: str, feature: str, package: str | None = None):
    """Import an optional dependency or raise a DependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DependencyError(package or module.split(".")[0], extra, feature) from exc
