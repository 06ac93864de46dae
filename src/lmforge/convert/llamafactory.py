"""LLaMA-Factory train config (``llamafactory-cli train FILE.yaml``) → lmforge run config.

Every top-level key goes through the foreign-name table (config/aliases.py). A key that is not
in it but is a transformers ``TrainingArguments`` field is forwarded as ``train.extra.<key>``
(``lmforge validate`` builds the arguments, so a bad one is still caught); anything else is
listed as not mapped, with why.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lmforge.config.alias_values import TEMPLATES, NotMapped
from lmforge.config.aliases import lookup
from lmforge.convert import Conversion

STAGES = ("pt", "sft", "rm", "dpo", "kto", "ppo")


def _training_arguments() -> set[str]:
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments)}


def convert(source: dict[str, Any]) -> Conversion:
    out = Conversion()
    stage = source.get("stage", "sft")
    if stage in STAGES:
        out.set("stage", stage, "stage")
    else:
        out.unmapped.append(("stage", f"'{stage}' is not an lmforge stage ({', '.join(STAGES)} "
                             "map one to one; orpo comes from pref_loss: orpo)"))
    passthrough: set[str] | None = None
    for key, value in source.items():
        if key == "stage":
            continue
        row = lookup(key, value)
        if row is None:
            passthrough = _training_arguments() if passthrough is None else passthrough
            if key in passthrough:
                out.set(f"train.extra.{key}", value, key)
                out.notes.append((key, f"forwarded as train.extra.{key} (a TrainingArguments "
                                  "field lmforge has no key of its own for)"))
            else:
                out.unmapped.append((key, "not a LLaMA-Factory train argument lmforge knows"))
            continue
        try:
            keys = row.translate(value, source)
        except NotMapped as exc:
            out.unmapped.append((key, str(exc)))
            continue
        for dotted, new in keys.items():
            out.set(dotted, new, key)
        if key == "template" and value not in TEMPLATES:
            out.notes.append((key, f"'{value}' is not an lmforge template: model.template: auto "
                              "uses the tokenizer's own chat template (check it with lmforge "
                              "data preview)"))
        elif key == "dataset":
            out.notes.append((key, f"dataset names are read from {keys['data.registry']}, "
                              "relative to the directory you run lmforge in"))
    return out
