"""LLaMA-Factory train config (``llamafactory-cli train FILE.yaml``) → lmforge run config.

Every top-level key goes through the foreign-name table (config/aliases.py), by the loop every
converter shares (convert/table.py).
"""

from __future__ import annotations

from typing import Any

from lmforge.convert import Conversion
from lmforge.convert.table import apply

STAGES = ("pt", "sft", "rm", "dpo", "kto", "ppo")


def convert(source: dict[str, Any]) -> Conversion:
    out = Conversion()
    stage = source.get("stage", "sft")
    if stage in STAGES:
        out.set("stage", stage, "stage")
    else:
        out.unmapped.append(("stage", f"'{stage}' is not an lmforge stage ({', '.join(STAGES)} "
                             "map one to one; orpo comes from pref_loss: orpo)"))
    apply(source, out, "LLaMA-Factory train", skip=("stage",))
    if "dataset" in source and "data.registry" in out.tree.get("data", {}):
        out.notes.append(("dataset", f"dataset names are read from "
                          f"{out.tree['data']['registry']}, relative to the directory you run "
                          "lmforge in"))
    return out
