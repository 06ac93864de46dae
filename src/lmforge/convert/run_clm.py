"""transformers' ``run_clm.py`` command line (with the LoRA seed's flags, ``--use_peft``,
``--lora_rank``, ``--target_modules q_proj,v_proj``, ``--max_source_length``, ...) → lmforge run
config. The flags come after ``--``: ``lmforge convert run-clm -- --model_name_or_path M ...``.

HfArgumentParser's syntax: ``--name value``, ``--name=value``, and a bare ``--name`` for a true
flag; ``--no_name`` for a false one. Values are read as YAML scalars (``1e-4``, ``true``). A
comma string stays a string here; the table turns the list-valued ones into lists."""

from __future__ import annotations

from typing import Any

from lmforge.config.aliases import CLM
from lmforge.config.loader import yaml_load
from lmforge.convert import Conversion
from lmforge.convert.table import apply
from lmforge.errors import ConfigError


SFT_FLAGS = {"prompt_column", "response_column", "history_column", "max_source_length",
             "max_target_length", "prompt_type"}


def parse(argv: list[str]) -> dict[str, Any]:
    """``['--lora_rank', '8', '--do_train']`` → ``{'lora_rank': 8, 'do_train': True}``."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--") or tok == "--":
            raise ConfigError(f"run_clm flags: '{tok}' is not a --flag",
                              "lmforge convert run-clm -- --model_name_or_path M --lora_rank 8")
        name, sep, value = tok[2:].partition("=")
        name = name.replace("-", "_")
        if not sep:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            else:
                value = "true"
        if name in out:
            raise ConfigError(f"run_clm flags: --{name} is given twice")
        out[name] = _scalar(value)
        i += 1
    for name in [k for k in out if k.startswith("no_") and out[k] is True]:
        out[name[3:]] = False
        del out[name]
    return out


def _scalar(text: str) -> Any:
    try:
        value = yaml_load(text)
    except Exception:  # noqa: BLE001 - any text YAML rejects stays a string
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def convert(source: dict[str, Any]) -> Conversion:
    out = Conversion()
    if SFT_FLAGS & set(source):  # the seed's prompt/response data: supervised fine-tuning
        out.set("stage", "sft", "(prompt/response flags)")
    else:  # plain run_clm: causal LM training on text
        out.set("stage", "pt", "(run_clm without prompt/response flags)")
    if not source.get("use_peft") and "peft_path" not in source:
        out.set("adapter.type", "full", "(no --use_peft)")
    apply(source, out, "run_clm", origin=CLM)
    return out
