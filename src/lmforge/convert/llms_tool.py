"""LLMs-Tool ``config.py`` → lmforge run config, read statically: the file is parsed with ``ast``
and never executed (it is someone's Python). What counts is the ``mode = '...'`` assignment and
the defaults of its dataclasses (ModelArguments, DataTrainingArguments, TrainingArguments, ...):
``name: type = field(default=V, ...)`` or ``name: type = V``. A default that is not a literal
(a call, a name) is listed as not mapped. Values go through the table (convert/table.py)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from lmforge.config.aliases import TOOL
from lmforge.convert import Conversion
from lmforge.convert.table import apply
from lmforge.errors import ConfigError

# the dataclass fields of LLMs-Tool that are that tool's own switches, not settings
IGNORED = {"output_dir_suffix"}


def _is_dataclass(node: ast.ClassDef) -> bool:
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "dataclass":
            return True
    return False


def _default(value: ast.expr) -> ast.expr | None:
    """The default expression of a field: ``field(default=V)`` → V; a plain value → itself;
    ``field(default_factory=...)`` / ``field()`` → None (no static default)."""
    if isinstance(value, ast.Call) and getattr(value.func, "id", getattr(value.func, "attr",
                                                                          "")) == "field":
        for kw in value.keywords:
            if kw.arg == "default":
                return kw.value
        return None
    return value


def read(path: str | Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(field or variable name → literal default, [(name, why not read)]) of ``path``."""
    p = Path(path)
    try:
        tree = ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
    except FileNotFoundError:
        raise ConfigError(f"{p}: not found") from None
    except SyntaxError as exc:
        raise ConfigError(f"{p}:{exc.lineno}: not valid Python ({exc.msg})") from None
    found: dict[str, Any] = {}
    skipped: list[tuple[str, str]] = []

    def take(name: str, expr: ast.expr | None, line: int) -> None:
        if expr is None:
            return
        try:
            found[name] = ast.literal_eval(expr)
        except ValueError:
            skipped.append((name, f"{p.name}:{line}: the default is not a literal "
                            f"({ast.unparse(expr)[:60]}), so it cannot be read without running "
                            "the file"))

    for node in tree.body:
        if isinstance(node, ast.ClassDef) and _is_dataclass(node):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) \
                        and item.value is not None:
                    take(item.target.id, _default(item.value), item.lineno)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "mode":
            take("mode", node.value, node.lineno)
    if not found and not skipped:
        raise ConfigError(f"{p}: no dataclass fields and no mode found",
                          "pass LLMs-Tool's config.py (its @dataclass argument classes)")
    return found, skipped


def convert(source: dict[str, Any], skipped: list[tuple[str, str]] = ()) -> Conversion:
    out = Conversion()
    if "mode" not in source:
        out.set("stage", "sft", "(no mode)")
    source = {k: v for k, v in source.items() if k not in IGNORED and v is not None}
    apply(source, out, "LLMs-Tool", origin=TOOL)
    out.unmapped.extend(skipped)
    if "adapter" not in out.tree:
        out.set("adapter.type", "lora", "(LLMs-Tool's default fine_tuning_type)")
    return out
