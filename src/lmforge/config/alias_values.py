"""Value translations of the foreign-name table (config/aliases.py): each takes the foreign value
and the whole foreign file (for keys that depend on another, like lora_rank and lora_alpha) and
returns the lmforge keys to set, {} when there is nothing to set, or raises NotMapped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Keys = dict[str, Any]  # lmforge dotted key -> value


class NotMapped(Exception):
    """This value has no lmforge equivalent; the message says why."""


def names(value) -> list[str]:
    """LLaMA-Factory's comma-separated lists ('a,b') or a YAML list."""
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def nothing(value, source) -> Keys:
    """Nothing to set: lmforge does this by itself."""
    return {}


def only(default: Any, why: str) -> Callable[[Any, dict], Keys]:
    """Nothing to set for ``default`` (or null); any other value has no equivalent: ``why``."""
    def run(value, source):
        if value == default or value is None:
            return {}
        raise NotMapped(why)
    return run


def one_adapter(value, source) -> Keys:
    if len(names(value)) != 1:
        raise NotMapped("several adapters: merge them first (lmforge export), then continue one")
    return {"adapter.path": names(value)[0]}


def flag(target: str, on: Any) -> Callable[[Any, dict], Keys]:
    return lambda value, source: {target: on} if value else {}


# LLaMA-Factory template name -> lmforge built-in (the rest: the tokenizer's own, 'auto')
TEMPLATES = {"alpaca": "alpaca", "chatml": "chatml", "llama2": "llama2", "llama3": "llama3",
             "qwen": "qwen", "empty": "plain"}


def template(value, source):
    if value in TEMPLATES:
        return {"model.template": TEMPLATES[value]}
    return {"model.template": "auto"}


def finetuning_type(value, source):
    if value not in ("lora", "full", "freeze"):
        raise NotMapped(f"finetuning_type '{value}' has no lmforge method (full, freeze, lora, "
                        "qlora, adalora, prompt/p/prefix tuning)")
    if value == "lora" and source.get("quantization_bit") in (4, 8):
        return {"adapter.type": "qlora"}
    return {"adapter.type": value}


def lora_rank(value, source):
    # LLaMA-Factory's default lora_alpha is twice the rank; lmforge's is a fixed 16
    out = {"adapter.r": value}
    if source.get("lora_alpha") is None:
        out["adapter.alpha"] = 2 * value
    return out


def lora_target(value, source):
    found = names(value)
    return {"adapter.target_modules": "all-linear" if found == ["all"] else found}


def quant_bit(value, source):
    if value not in (4, 8):
        raise NotMapped(f"{value}-bit quantization: lmforge's QLoRA takes 4 or 8 bits")
    if source.get("finetuning_type", "lora") != "lora":
        raise NotMapped("lmforge quantizes the base only for LoRA (adapter.type: qlora)")
    return {"adapter.bits": value}


def pref_stage(source) -> str:
    if source.get("pref_loss") == "orpo":
        return "orpo"
    stage = source.get("stage", "sft")
    return stage if stage in ("dpo", "kto") else "dpo"


def pref_loss(value, source):
    if value == "orpo":
        return {"stage": "orpo"}
    if value in ("sigmoid", "hinge", "ipo"):
        return {} if value == "sigmoid" else {"dpo.loss": value}
    raise NotMapped(f"pref_loss '{value}' has no lmforge loss (dpo.loss: sigmoid, hinge, ipo, "
                    "robust, ...; stage orpo)")


def flash_attn(value, source):
    table = {"auto": "auto", "disabled": "eager", "sdpa": "sdpa", "fa2": "flash_attention_2"}
    if value not in table:
        raise NotMapped(f"flash_attn '{value}': lmforge has auto, eager, sdpa, flash_attention_2")
    return {} if value == "auto" else {"model.attn_implementation": table[value]}


def dataset(value, source):
    registry = f"{str(source.get('dataset_dir') or 'data').rstrip('/')}/dataset_info.json"
    return {"data.train": names(value), "data.registry": registry}


def eval_dataset(value, source):
    return {"data.eval": names(value)}


def val_size(value, source):
    if isinstance(value, float) and 0 < value < 1:
        return {} if source.get("eval_dataset") else {"data.eval": value}
    if not value:
        return {}
    raise NotMapped("a row count: lmforge's data.eval takes a fraction (0 < f < 1)")


def report_to(value, source):
    found = names(value)
    if found == ["all"]:
        raise NotMapped("'all' depends on what is installed: name the trackers (tensorboard, "
                        "wandb, mlflow) or none")
    return {"train.report_to": found}


def resume(value, source):
    if value in (None, False):
        return {}
    return {"train.resume": "auto" if value is True else value}


def best_metric(value, source):
    return {"eval.best_metric": str(value).removeprefix("eval_")} if value else {}


def freeze_layers(value, source):
    if isinstance(value, int) and value < 0:
        raise NotMapped("a negative count (the first layers): lmforge trains the last N layers")
    return {"adapter.trainable_layers": value}


def by_stage(method_key: str) -> Callable[[Any, dict], Keys]:
    return lambda value, source: {f"{pref_stage(source)}.{method_key}": value}


def strategy(value, source):
    if value in ("no", "steps", None):
        return {}
    raise NotMapped(f"'{value}': lmforge works in steps (train.save_steps, train.eval_steps)")
