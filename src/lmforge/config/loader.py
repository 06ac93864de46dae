"""Load a run: YAML files (one run file, or a data file + a model file), overrides, validation.

Order: the run file (if any) is the base; the data file and the model file are merged onto it and
may not set the same key (that would be ambiguous: it is reported). ``--D.a.b=v`` edits the data
file's keys before merging, ``--M.a.b=v`` the model file's, ``a.b=v`` the merged result; a
top-level key works the same (``stage=dpo``; ``adapter={type: lora, r: 8}`` replaces the block).
Values are YAML, so ``1e-4``, ``true``, ``[q_proj, v_proj]`` and ``{type: lora}`` work. A key
given twice in one mapping of a file is an error naming both lines (PyYAML would keep the last).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lmforge.config import crosscheck
from lmforge.config.report import format_errors
from lmforge.config.run import METHOD_KEYS, RunConfig
from lmforge.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 floats: PyYAML (YAML 1.1) reads ``1e-4`` as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


class DuplicateKeyError(yaml.YAMLError):
    """A mapping gives the same key twice (YAML says keys are unique; PyYAML keeps the last).
    ``found`` holds (dotted key, first line, second line), lines 1-based, all of them at once."""

    def __init__(self, found: list[tuple[str, int, int]]):
        self.found = found
        super().__init__("; ".join(f"key '{k}' given twice (lines {a} and {b})"
                                   for k, a, b in found))

    def lines(self, where: str) -> list[str]:
        return [f"{where}:{b}: key '{k}' is given twice (first at line {a}); keep one of them"
                for k, a, b in self.found]


def _construct_mapping(self, node, deep=False):
    # record duplicate keys (with both line numbers) before PyYAML keeps only the last one;
    # '<<' merge keys may repeat keys on purpose and are left to PyYAML
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    self.duplicates.append((str(key), seen[key], line))
                else:
                    seen[key] = line
            except TypeError:  # an unhashable key: PyYAML reports it itself
                continue
    return yaml.SafeLoader.construct_mapping(self, node, deep=deep)


_Loader.construct_mapping = _construct_mapping


def yaml_load(text: str):
    """YAML 1.2 floats; a key given twice in one mapping raises DuplicateKeyError."""
    loader = _Loader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    if loader.duplicates:
        raise DuplicateKeyError(sorted(set(loader.duplicates), key=lambda d: d[2]))
    return data


def read_yaml(path: str | os.PathLike, role: str = "config") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{role} file {p}: not found")
    try:
        data = yaml_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raw = p.read_bytes()
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{line}: not valid UTF-8 ({exc.reason})") from None
    except DuplicateKeyError as exc:
        raise ConfigError(exc.lines(str(p))) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys (got {type(data).__name__})")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (['a','b','c'], parsed YAML scalar)."""
    key, sep, raw = text.partition("=")
    key = key.strip().lstrip("-")
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': expected key.path=value")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': value is not valid YAML ({exc})") from exc
    return key.split("."), value


def set_path(tree: dict, parts: list[str], value: Any, origin: str) -> None:
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            path = ".".join(parts[: i + 1])
            raise ConfigError(f"{path}: cannot set '{'.'.join(parts)}' from {origin}, "
                              f"'{path}' is a {type(child).__name__}, not a mapping")
        node = child
    node[parts[-1]] = value


def merge(base: dict, top: dict, conflicts: list[str] | None = None, prefix: str = "") -> dict:
    """Deep-merge ``top`` onto ``base``; record keys both define with different values."""
    out = dict(base)
    for key, value in top.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, conflicts, path)
        else:
            if conflicts is not None and key in out and out[key] != value:
                conflicts.append(path)
            out[key] = value
    return out


def compose(config: str | None = None, data: str | None = None, model: str | None = None,
            overrides: list[str] = (), data_overrides: list[str] = (),
            model_overrides: list[str] = ()) -> dict[str, Any]:
    """Build the merged raw dict (before validation)."""
    if not (config or data or model):
        raise ConfigError("no configuration given: pass a run file, or --data and --model files")
    if data_overrides and not data:
        raise ConfigError("--D. overrides need a data config file (--data FILE)")
    if model_overrides and not model:
        raise ConfigError("--M. overrides need a model config file (--model FILE)")
    base = read_yaml(config, "run config") if config else {}
    data_tree = read_yaml(data, "data config") if data else {}
    model_tree = read_yaml(model, "model config") if model else {}
    for text in data_overrides:
        set_path(data_tree, *parse_override(text), origin="--D.")
    for text in model_overrides:
        set_path(model_tree, *parse_override(text), origin="--M.")
    conflicts: list[str] = []
    files = merge(data_tree, model_tree, conflicts)
    if conflicts:
        raise ConfigError([f"{c}: set in both the data config ({data}) and the model config "
                           f"({model}); keep it in one of them" for c in conflicts])
    merged = merge(base, files)
    for text in overrides:
        set_path(merged, *parse_override(text), origin="an override")
    return merged


def validate(tree: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        lines = format_errors(exc, RunConfig)
        if not any(e["type"] in crosscheck.TYPES for e in exc.errors()):
            # a section failed, so RunConfig's cross-section check did not run: run it on the
            # sections that are valid, so that every problem is reported at once
            found = crosscheck.raw_problems(tree, RunConfig)
            if found:
                extra = crosscheck.as_validation_error("RunConfig", found)
                lines += [line for line in format_errors(extra, RunConfig) if line not in lines]
        foreign = sum("a LLaMA-Factory" in line for line in lines)
        hint = ("these are LLaMA-Factory keys: lmforge convert llamafactory FILE -o run.yaml "
                "writes the lmforge config (docs/migration.md)") if foreign >= 3 else None
        raise ConfigError(lines, hint) from None


def load(config: str | None = None, data: str | None = None, model: str | None = None,
         overrides: list[str] = (), data_overrides: list[str] = (),
         model_overrides: list[str] = ()) -> RunConfig:
    return validate(compose(config, data, model, overrides, data_overrides, model_overrides))


def to_yaml(cfg: RunConfig) -> str:
    tree = cfg.model_dump(mode="json", exclude_none=False)
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


PLACEHOLDER_MODEL = "builtin:tiny-llama"  # stands in for a missing/invalid model.path


def _drop(tree: dict, parts: list, dropped: set[str]) -> bool:
    """Remove the key at ``parts`` (up to the first list index) so that its default applies."""
    keys = [p for p in parts[: next((i for i, p in enumerate(parts) if isinstance(p, int)),
                                    len(parts))]]
    if keys[:2] == ["model", "path"] or keys == ["model"]:
        model = tree.get("model") if isinstance(tree.get("model"), dict) else {}
        tree["model"] = dict(model, path=PLACEHOLDER_MODEL)
        dropped.add("model.path")
        return True
    node = tree
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            break
        node = node[key]
    else:
        if keys and keys[-1] in node:
            del node[keys[-1]]
            dropped.add(".".join(map(str, keys)))
            return True
    if keys and keys[0] in tree:  # the whole section falls back to its defaults
        del tree[keys[0]]
        dropped.add(str(keys[0]))
        return True
    return False


def validate_partial(tree: dict[str, Any]
                     ) -> tuple[RunConfig | None, ConfigError | None, set[str]]:
    """Validate, and when that fails, also a copy without the offending keys (their defaults
    apply), so that ``lmforge validate`` can run its later checks on everything that is valid.
    Returns (config or None, the schema's ConfigError or None, dotted keys dropped: checks of
    those are skipped)."""
    import copy

    from lmforge.config.report import _walk

    try:
        return validate(tree), None, set()
    except ConfigError as exc:
        error = exc
    if not isinstance(tree, dict):
        return None, error, set()
    work, dropped = copy.deepcopy(tree), set()
    for _ in range(8):
        try:
            return RunConfig.model_validate(work), error, dropped
        except ValidationError as exc:
            # checks that only run once the sections are valid (the whole-run ones) report here
            error.problems += [p for p in format_errors(exc, RunConfig)
                               if p not in error.problems]
            changed = False
            for err in exc.errors():
                parts, _ = _walk(RunConfig, tuple(err["loc"]))
                if parts:
                    # an unknown key never took effect: set it aside without skipping checks
                    changed |= _drop(work, parts, dropped if err["type"] != "extra_forbidden"
                                     else set())
                    continue
                # a whole-run check: method blocks of another stage, or no ppo/grpo block
                stage = work.get("stage", "sft")
                for key in list(work):
                    if key in METHOD_KEYS and key != stage:
                        del work[key]
                        dropped.add(key)
                        changed = True
            if not changed:
                break
    return None, error, dropped
