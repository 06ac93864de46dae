"""The shared translation loop of the converters: each foreign key through the foreign-name table
(config/aliases.py); a key not in it that is a transformers ``TrainingArguments`` field is
forwarded as ``train.extra.<key>`` (``lmforge validate`` builds the arguments, so a bad one is
still caught); anything else is listed as not mapped, with why."""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

from lmforge.config.alias_values import TEMPLATES, NotMapped
from lmforge.config.aliases import lookup
from lmforge.convert import Conversion


@lru_cache(maxsize=1)
def training_arguments() -> frozenset[str]:
    from transformers import TrainingArguments

    return frozenset(f.name for f in dataclasses.fields(TrainingArguments))


def apply(source: dict[str, Any], out: Conversion, tool: str, origin: str | None = None,
          skip: tuple[str, ...] = (), unknown: str | None = None) -> None:
    """Translate every key of ``source`` (but ``skip``) into ``out``. ``origin`` prefers that
    tool's rows of the table; ``unknown`` is the why of a key nobody knows."""
    for key, value in source.items():
        if key in skip:
            continue
        row = lookup(key, value, origin)
        if row is None:
            if key in training_arguments():
                out.set(f"train.extra.{key}", value, key)
                out.notes.append((key, f"forwarded as train.extra.{key} (a TrainingArguments "
                                  "field lmforge has no key of its own for)"))
            else:
                out.unmapped.append((key, unknown or f"not a {tool} argument lmforge knows"))
            continue
        try:
            keys = row.translate(value, source)
        except NotMapped as exc:
            out.unmapped.append((key, str(exc)))
            continue
        for dotted, new in keys.items():
            out.set(dotted, new, key)
        if row.target == "model.template" and value not in TEMPLATES:
            out.notes.append((key, f"'{value}' is not an lmforge template: model.template: auto "
                              "uses the tokenizer's own chat template (check it with lmforge "
                              "data preview)"))
