"""The one table of foreign config names: LLaMA-Factory's train arguments, transformers'
``TrainingArguments`` (which LLaMA-Factory passes through), and the CausalLM-Lit seed's model-file
blocks, each with the lmforge key it becomes, how its value translates, or why it has none.

Three users: ``lmforge validate`` (config/report.py) turns an unknown key that is in the table
into ``cutoff_len → data.max_length`` instead of a generic did-you-mean; ``lmforge convert
llamafactory`` (lmforge/convert/) translates a whole file through ``Alias.translate``; and
docs/migration.md is generated from it (``render_markdown``; tests/unit/test_docs_migration.py
keeps it current).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LF = "LLaMA-Factory"
HF = "TrainingArguments"
BOTH = "LLaMA-Factory, TrainingArguments"
LIT = "CausalLM-Lit"

Keys = dict[str, Any]  # lmforge dotted key -> value


class NotMapped(Exception):
    """This value (not the key in general) has no lmforge equivalent; the message says why."""


@dataclass(frozen=True)
class Alias:
    name: str  # the foreign key
    target: str | None  # the lmforge key; None: no equivalent (``note`` says why)
    origin: str
    note: str = ""  # how the value translates, or why there is no equivalent
    value: Callable[[Any, dict], Keys] | None = None  # (value, whole foreign file) -> keys

    def translate(self, value: Any, source: dict) -> Keys:
        """The lmforge keys for ``value``; {} when it is the default (nothing to set). Raises
        NotMapped when there is no equivalent."""
        if self.target is None:
            raise NotMapped(self.note)
        if self.value is not None:
            return self.value(value, source)
        return {self.target: value}


# ---- value translations ---------------------------------------------------------------------

def _names(value) -> list[str]:
    """LLaMA-Factory's comma-separated lists ('a,b') or a YAML list."""
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _skip_if(default: Any, target: str, why: str = "") -> Callable[[Any, dict], Keys]:
    def run(value, source):
        if value == default or value is None:
            return {}
        if why:
            raise NotMapped(why)
        return {target: value}
    return run


def _flag(target: str, on: Any) -> Callable[[Any, dict], Keys]:
    return lambda value, source: {target: on} if value else {}


# LLaMA-Factory template name -> lmforge built-in (the rest: the tokenizer's own, 'auto')
TEMPLATES = {"alpaca": "alpaca", "chatml": "chatml", "llama2": "llama2", "llama3": "llama3",
             "qwen": "qwen", "empty": "plain"}


def _template(value, source):
    if value in TEMPLATES:
        return {"model.template": TEMPLATES[value]}
    return {"model.template": "auto"}


def _finetuning_type(value, source):
    if value not in ("lora", "full", "freeze"):
        raise NotMapped(f"finetuning_type '{value}' has no lmforge method (full, freeze, lora, "
                        "qlora, adalora, prompt/p/prefix tuning)")
    if value == "lora" and source.get("quantization_bit") in (4, 8):
        return {"adapter.type": "qlora"}
    return {"adapter.type": value}


def _lora_rank(value, source):
    # LLaMA-Factory's default lora_alpha is twice the rank; lmforge's is a fixed 16
    out = {"adapter.r": value}
    if source.get("lora_alpha") is None:
        out["adapter.alpha"] = 2 * value
    return out


def _lora_target(value, source):
    names = _names(value)
    return {"adapter.target_modules": "all-linear" if names == ["all"] else names}


def _quant_bit(value, source):
    if value not in (4, 8):
        raise NotMapped(f"{value}-bit quantization: lmforge's QLoRA takes 4 or 8 bits")
    if source.get("finetuning_type", "lora") != "lora":
        raise NotMapped("lmforge quantizes the base only for LoRA (adapter.type: qlora)")
    return {"adapter.bits": value}


def _pref_stage(source) -> str:
    if source.get("pref_loss") == "orpo":
        return "orpo"
    stage = source.get("stage", "sft")
    return stage if stage in ("dpo", "kto") else "dpo"


def _pref_loss(value, source):
    if value == "orpo":
        return {"stage": "orpo"}
    if value in ("sigmoid", "hinge", "ipo"):
        return {} if value == "sigmoid" else {"dpo.loss": value}
    raise NotMapped(f"pref_loss '{value}' has no lmforge loss (dpo.loss: sigmoid, hinge, ipo, "
                    "robust, ...; stage orpo)")


def _flash_attn(value, source):
    table = {"auto": "auto", "disabled": "eager", "sdpa": "sdpa", "fa2": "flash_attention_2"}
    if value not in table:
        raise NotMapped(f"flash_attn '{value}': lmforge has auto, eager, sdpa, flash_attention_2")
    return {} if value == "auto" else {"model.attn_implementation": table[value]}


def _dataset(value, source):
    registry = f"{str(source.get('dataset_dir') or 'data').rstrip('/')}/dataset_info.json"
    return {"data.train": _names(value), "data.registry": registry}


def _eval_dataset(value, source):
    return {"data.eval": _names(value)}


def _val_size(value, source):
    if isinstance(value, float) and 0 < value < 1:
        return {} if source.get("eval_dataset") else {"data.eval": value}
    if not value:
        return {}
    raise NotMapped("a row count: lmforge's data.eval takes a fraction (0 < f < 1)")


def _report_to(value, source):
    names = _names(value)
    if names == ["all"]:
        raise NotMapped("'all' depends on what is installed: name the trackers (tensorboard, "
                        "wandb, mlflow) or none")
    return {"train.report_to": names}


def _resume(value, source):
    if value in (None, False):
        return {}
    return {"train.resume": "auto" if value is True else value}


def _best_metric(value, source):
    return {"eval.best_metric": str(value).removeprefix("eval_")} if value else {}


def _freeze_layers(value, source):
    if isinstance(value, int) and value < 0:
        raise NotMapped("a negative count (the first layers): lmforge trains the last N layers")
    return {"adapter.trainable_layers": value}


def _by_stage(method_key: str) -> Callable[[Any, dict], Keys]:
    return lambda value, source: {f"{_pref_stage(source)}.{method_key}": value}


def _strategy(value, source):
    if value in ("no", "steps", None):
        return {}
    raise NotMapped(f"'{value}': lmforge works in steps (train.save_steps, train.eval_steps)")
