"""The Train tab's form, generated from the RunConfig schema (no gradio here, so it is testable).

Each leaf field of the schema becomes one ``FieldSpec``: a checkbox (bool), a drop-down (Literal)
or a text box holding YAML (numbers, lists, mappings, optional values), with the field's
``description`` as help text. Method blocks (``sft:``, ``dpo:``...) are listed under their stage.

``build_tree`` turns the form's values back into a run-config mapping holding only what differs
from the defaults (so the YAML written is the short one a person would write), and ``check``
validates it exactly as ``lmforge validate`` does and returns the text that command prints.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

SECTIONS = ("model", "adapter", "data", "train", "eval")


@dataclass(frozen=True)
class FieldSpec:
    path: str  # dotted key, e.g. "train.learning_rate"
    kind: str  # "bool", "choice" or "text"
    default: Any  # the value shown first: bool, a choice, or YAML text
    description: str
    choices: tuple = ()
    required: bool = False
    plain_str: bool = False  # a str field: the text is taken as is, not parsed as YAML

    @property
    def section(self) -> str:
        return self.path.split(".")[0] if "." in self.path else "run"


def _union_args(ann) -> tuple:
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return typing.get_args(ann)
    return (ann,)


def _section_class(ann):
    args = [a for a in _union_args(ann) if a is not type(None)]
    if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0]
    return None


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _leaf(path: str, info) -> FieldSpec:
    ann = info.annotation
    args = _union_args(ann)
    optional = type(None) in args
    kinds = [a for a in args if a is not type(None)]
    required = info.default is PydanticUndefined and info.default_factory is None
    default = None if required else info.get_default(call_default_factory=True)
    desc = info.description or ""
    if len(kinds) == 1 and typing.get_origin(kinds[0]) is Literal:
        choices = tuple(typing.get_args(kinds[0]))
        if optional:
            choices = ("",) + choices
        return FieldSpec(path, "choice", "" if default is None else default, desc, choices,
                         required)
    if kinds == [bool] and not optional:
        return FieldSpec(path, "bool", bool(default), desc, (), required)
    return FieldSpec(path, "text", to_text(default), desc, (), required, kinds == [str])


def fields(cls=None, prefix: str = "") -> list[FieldSpec]:
    """Every leaf field of the run config (method blocks under their stage name)."""
    from lmforge.config.methods import METHOD_BLOCKS
    from lmforge.config.run import RunConfig

    cls = cls or RunConfig
    out: list[FieldSpec] = []
    for name, info in cls.model_fields.items():
        path = f"{prefix}{name}"
        if cls is RunConfig and name in METHOD_BLOCKS:
            out += fields(METHOD_BLOCKS[name], f"{path}.")
            continue
        sub = _section_class(info.annotation)
        optional = type(None) in _union_args(info.annotation)
        if sub is not None and not optional:
            out += fields(sub, f"{path}.")
        else:
            out.append(_leaf(path, info))
    return out


def groups(specs: list[FieldSpec]) -> dict[str, list[FieldSpec]]:
    """Fields by section: run (stage), model, adapter, data, train, eval, then method blocks."""
    out: dict[str, list[FieldSpec]] = {}
    for spec in specs:
        out.setdefault(spec.section, []).append(spec)
    order = ["run", *SECTIONS]
    return {k: out[k] for k in order + [k for k in out if k not in order] if k in out}


def parse(spec: FieldSpec, value: Any) -> Any:
    """The form value as the YAML value it stands for (text boxes hold YAML)."""
    if spec.kind == "bool":
        return bool(value)
    if spec.kind == "choice":
        return None if value in ("", None) else value
    text = "" if value is None else str(value)
    if not text.strip():
        return None
    if spec.plain_str:
        return text
    from lmforge.config.loader import yaml_load

    try:
        return yaml_load(text)
    except yaml.YAMLError:
        return text  # the validator then names the field and what it expected


def _unchanged(spec: FieldSpec, value: Any) -> bool:
    if spec.kind == "text":
        text = "" if value is None else str(value)
        return text.strip() == str(spec.default).strip() or (not text.strip() and
                                                               not spec.required)
    return value == spec.default or (spec.kind == "choice" and value in ("", None)
                                     and spec.default in ("", None))


def build_tree(values: dict[str, Any], specs: list[FieldSpec] | None = None) -> dict:
    """The run-config mapping for the form's values: required keys and changed ones only."""
    from lmforge.config.loader import set_path

    tree: dict = {}
    for spec in specs or fields():
        if spec.path not in values:
            continue
        value = values[spec.path]
        if not spec.required and _unchanged(spec, value):
            continue
        set_path(tree, spec.path.split("."), parse(spec, value), "the form")
    return tree


def to_yaml(tree: dict) -> str:
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def check(tree: dict):
    """(RunConfig or None, message): the same checks and text as ``lmforge validate``."""
    from lmforge.commands.validate import problems_of
    from lmforge.errors import ConfigError

    try:
        cfg, problems, hint, warnings = problems_of(tree)
        if problems:
            raise ConfigError(problems, hint)
    except ConfigError as exc:
        hint = f"\nhint: {exc.hint}" if exc.hint else ""
        return None, "".join(w + "\n" for w in warnings) + f"error: {exc.message}{hint}"
    return cfg, "".join(w + "\n" for w in warnings) + "ok" + chain_note(cfg.model.path)


def chain_note(path: str) -> str:
    """What a run directory as model.path means (the UI started on a run pre-fills one)."""
    from lmforge.model.chain import adapter_dir

    if adapter_dir(path) is None:
        return ""
    return ("\nmodel.path is a run with an adapter: this run continues from that run's model "
            "(its adapter merged into its base, saved in <output_dir>/base; docs/chaining.md)")
