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


# ---- the seeds' own names (LLMs-Tool config.py, run_clm flags) ---------------------------------
def fine_tuning_type(value, source):
    """LLMs-Tool's fine_tuning_type; lora/adalora with quantization_bit become QLoRA."""
    table = {"lora": "lora", "adalora": "adalora", "full": "full", "prompt_tuning":
             "prompt_tuning", "p_tuning": "p_tuning", "prefix_tuning": "prefix_tuning"}
    if value not in table:
        raise NotMapped(f"fine_tuning_type '{value}' has no lmforge method ({', '.join(table)})")
    if value == "lora" and source.get("quantization_bit") in (4, 8):
        return {"adapter.type": "qlora"}
    return {"adapter.type": table[value]}


def use_peft(value, source):
    """run_clm's use_peft: LoRA with the seed's defaults (rank 8, alpha 32, dropout 0.05,
    q_proj,v_proj) for the flags not given; false: a full fine-tune."""
    if not value:
        return {"adapter.type": "full"}
    out = {"adapter.type": "lora"}
    for key, target, default in (("lora_rank", "adapter.r", 8), ("lora_alpha", "adapter.alpha",
                                 32), ("lora_dropout", "adapter.dropout", 0.05)):
        if key not in source:
            out[target] = default
    if "target_modules" not in source:
        out["adapter.target_modules"] = ["q_proj", "v_proj"]
    return out


def target_modules(value, source):
    """A comma string (run_clm's 'q_proj,v_proj') or a list → a list; 'all' → all-linear."""
    found = names(value)
    return {"adapter.target_modules": "all-linear" if found in (["all"], ["all-linear"])
            else found}


def names_to(target: str) -> Callable[[Any, dict], Keys]:
    return lambda value, source: {target: names(value)} if value else {}


def percent_eval(value, source):
    """run_clm's validation_split_percentage (of the train file, when no validation_file)."""
    if source.get("validation_file") or not value:
        return {}
    if not 0 < float(value) < 100:
        raise NotMapped(f"{value}%: data.eval takes a fraction between 0 and 1")
    return {"data.eval": float(value) / 100}


def column(name: str) -> Callable[[Any, dict], Keys]:
    return lambda value, source: {f"data.columns.{name}": value, "data.format":
                                  "prompt_response"} if value else {}


def torch_dtype(value, source):
    table = {"auto": "auto", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}
    if value in (None, "auto"):
        return {}
    if value not in table:
        raise NotMapped(f"torch_dtype '{value}': lmforge has auto, float32, bfloat16, float16")
    return {"model.dtype": table[value]}


MODES = {"sft_train": "sft", "rm_train": "rm", "ppo_train": "ppo", "dpo_train": "dpo",
         "pretrain": "pt"}
MODE_COMMANDS = {
    "web_inference": "lmforge webui RUN", "terminal_inference": "lmforge chat RUN",
    "sft_batch_test": "lmforge eval RUN --data-file TEST", "rm_batch_test": "lmforge eval "
    "RUN (reward accuracy and margin)", "merge_lora_model": "lmforge export RUN --merge --out DIR",
    "show_model_info": "lmforge info RUN --tree", "save_quantized_model": "lmforge export RUN "
    "--quantize 4|8 --out DIR"}


def mode(value, source):
    if value in MODES:
        return {"stage": MODES[value]}
    if value in MODE_COMMANDS:
        raise NotMapped(f"mode '{value}' is not training: {MODE_COMMANDS[value]}")
    raise NotMapped(f"mode '{value}' has no lmforge stage ({', '.join(MODES)} map to "
                    f"{', '.join(MODES.values())})")


def quantization(value, source):
    if value in (None, "bnb"):
        return {}
    raise NotMapped(f"'{value}' quantization: lmforge quantizes with bitsandbytes (bnb) only")
