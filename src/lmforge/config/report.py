"""Turn pydantic's ValidationError into one line per problem: dotted path, message, got-value,
and a hint for unknown keys (all problems at once, never just the first): a LLaMA-Factory,
transformers or seed-config name says its lmforge key (config/aliases.py), a key of another
section says which, a TrainingArguments field points to train.extra, else did-you-mean."""

from __future__ import annotations

import difflib
import typing

from pydantic import BaseModel, ValidationError

from lmforge.config import aliases


def _model_in(annotation) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation like ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_type_tag(part: str) -> bool:
    # pydantic adds union-member tags such as 'str', 'list[union[str,SourceSpec]]' to locations
    return any(c in part for c in "[]-") or part in {"str", "int", "float", "bool", "dict", "list",
                                                   "none", "function-after"}


def _walk(root: type[BaseModel], loc: tuple) -> tuple[list, type[BaseModel] | None]:
    """Clean a location (drop union tags); return it and the model holding its last key."""
    model: type[BaseModel] | None = root
    holder: type[BaseModel] | None = root
    clean: list = []
    for part in loc:
        if isinstance(part, int):
            clean.append(part)
        elif model is not None and part in model.model_fields:
            clean.append(part)
            holder, model = model, _model_in(model.model_fields[part].annotation)
        elif not _is_type_tag(part):
            clean.append(part)
            holder, model = model, None
    return clean, holder


def _readable(part):
    """A key as written, or quoted when it would be invisible or ambiguous ('', '\\r', ' a')."""
    if isinstance(part, str) and (not part or not part.isprintable() or part.strip() != part):
        return repr(part)
    return part


def _dotted(parts: list) -> str:
    out = ""
    for p in map(_readable, parts):
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _got(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _elsewhere(key: str, model: type[BaseModel], holder: type[BaseModel] | None) -> list[str]:
    """``section.key`` for each other top-level section of ``model`` that has ``key``."""
    found = []
    for name, field in model.model_fields.items():
        section = _model_in(field.annotation)
        if section is not None and section is not holder and key in section.model_fields:
            found.append(f"{name}.{key}")
    return found


def _training_arguments_field(key: str, model: type[BaseModel]) -> bool:
    """A transformers TrainingArguments field, for a config that forwards them (train.extra)."""
    train = _model_in(model.model_fields["train"].annotation) if "train" in model.model_fields \
        else None
    if train is None or "extra" not in train.model_fields:
        return False
    import dataclasses

    from transformers import TrainingArguments  # only on this error path

    return key in {f.name for f in dataclasses.fields(TrainingArguments)}


def _suggest(key: str, model: type[BaseModel], loc: tuple, value=None) -> str:
    # the container the unknown key sits in
    container_loc = loc[:-1]
    _, holder = _walk(model, container_loc + ("__probe__",))
    names = list(holder.model_fields) if holder is not None else []
    # a name from LLaMA-Factory, transformers or a seed config: say what it is in lmforge
    foreign = aliases.hint(key, value)
    if foreign:
        return f"; {foreign}"
    other = _elsewhere(key, model, holder)
    if other:
        return f"; it belongs in another section: {' or '.join(other)}"
    if _training_arguments_field(key, model):
        return f"; a TrainingArguments field: give it as train.extra.{key}"
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else (
        f"; valid keys: {', '.join(names)}" if names else "")


def format_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    by_path: dict[str, list[str]] = {}
    for err in exc.errors():
        loc = tuple(err["loc"])
        parts, _ = _walk(model, loc)
        path = _dotted(parts)
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key" + _suggest(str(loc[-1]), model, loc, err.get("input"))
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if kind not in ("value_error", "cross_section") and "input" in err:
                msg += f" (got {_got(err['input'])})"
        if msg not in by_path.setdefault(path, []):
            by_path[path].append(msg)
    lines = []
    for path, msgs in by_path.items():
        lines.append(f"{path}: " + (msgs[0] if len(msgs) == 1 else " or ".join(msgs)))
    return lines

