"""CausalLM-Lit data + model YAML pair → lmforge run config.

The model file's blocks: ``pretrain`` (path, args for from_pretrained), ``tokenizer``,
``config``, ``quant`` (bitsandbytes), ``peft`` (LoRA), ``optim``; the data file's ``datamodule``
(a Python class + its args) and ``metrics``. Its own overrides ``--D.a.b=v`` / ``--M.a.b=v`` edit
the two files before they are converted, as CausalLM-Lit does. Names the table knows go through it
(convert/table.py); the blocks are taken apart here.
"""

from __future__ import annotations

from typing import Any

from lmforge.config.aliases import LIT
from lmforge.convert import Conversion
from lmforge.convert.table import apply

# pretrain.args (from_pretrained keyword arguments) -> lmforge key
PRETRAIN_ARGS = {"trust_remote_code": "model.trust_remote_code", "revision": "model.revision",
                 "attn_implementation": "model.attn_implementation"}
PEFT = {"r": "adapter.r", "lora_alpha": "adapter.alpha", "lora_dropout": "adapter.dropout",
        "target_modules": "adapter.target_modules", "modules_to_save": "adapter.modules_to_save",
        "use_rslora": "adapter.use_rslora", "use_dora": "adapter.use_dora"}
QUANT = {"bnb_4bit_quant_type": "adapter.quant_type",
         "bnb_4bit_use_double_quant": "adapter.double_quant"}
OPTIM = {"lr": "train.learning_rate", "weight_decay": "train.weight_decay"}


def _block(out: Conversion, name: str, block: Any, table: dict[str, str]) -> dict:
    """The keys of ``block`` the table maps; returns the rest."""
    if not isinstance(block, dict):
        out.unmapped.append((name, f"expected a mapping, got {type(block).__name__}"))
        return {}
    rest = {}
    for key, value in block.items():
        if key in table:
            out.set(table[key], value, f"{name}.{key}")
        else:
            rest[key] = value
    return rest


def _pretrain(out: Conversion, block: dict) -> None:
    block = dict(block) if isinstance(block, dict) else {"path": block}
    if "path" in block:
        out.set("model.path", block.pop("path"), "pretrain.path")
    args = block.pop("args", None) or {}
    for key, value in _block(out, "pretrain.args", args, PRETRAIN_ARGS).items():
        if key == "torch_dtype":
            apply({key: value}, out, LIT, origin="run_clm")
        else:
            out.unmapped.append((f"pretrain.args.{key}", "a from_pretrained argument lmforge "
                                 "does not pass (model: has path, dtype, attn_implementation, "
                                 "trust_remote_code, revision)"))
    for key in block:
        out.unmapped.append((f"pretrain.{key}", "not a pretrain key lmforge knows"))


def _quant(out: Conversion, block: dict) -> None:
    rest = _block(out, "quant", block, QUANT)
    bits = 4 if rest.pop("load_in_4bit", False) else 8 if rest.pop("load_in_8bit", False) else 0
    if bits:
        out.set("adapter.type", "qlora", f"quant.load_in_{bits}bit")
        out.set("adapter.bits", bits, f"quant.load_in_{bits}bit")
    if rest.pop("bf16", False):
        out.set("train.precision", "bf16", "quant.bf16")
    for key in rest:
        if key == "bnb_4bit_compute_dtype":
            out.notes.append(("quant.bnb_4bit_compute_dtype", "lmforge computes in model.dtype "
                              "(auto: bfloat16 on a GPU that has it)"))
        else:
            out.unmapped.append((f"quant.{key}", "not a bitsandbytes setting lmforge takes "
                                 "(adapter.bits, quant_type, double_quant)"))


def _datamodule(out: Conversion, block: dict) -> None:
    args = dict(block.get("args") or {}) if isinstance(block, dict) else {}
    cls = block.get("class_name") if isinstance(block, dict) else None
    if "data_dir" in args:
        out.set("data.train", args.pop("data_dir"), "datamodule.args.data_dir")
        out.notes.append(("datamodule.args.data_dir", "a directory: lmforge reads every data "
                          "file in it (instruction/input/output rows are data.format alpaca; "
                          "check with lmforge data preview)"))
    if cls:
        out.unmapped.append(("datamodule.class_name", f"'{cls}' is a Python data class: lmforge "
                             "reads data files (data.format), or rows from your own function "
                             "with data.format: python (docs/data.md)"))
    for key in args:
        out.unmapped.append((f"datamodule.args.{key}", "an argument of the Python data class"))


def _metrics(out: Conversion, block: Any) -> None:
    block = block if isinstance(block, dict) else {"name": block}
    names = block.get("name")
    names = [names] if isinstance(names, str) else list(names or [])
    if names:
        out.set("eval.metrics", names, "metrics.name")
        out.set("eval.best_metric", names[0], "metrics.name")
    if block.get("eval_calculate"):
        out.set("eval.during_training", True, "metrics.eval_calculate")


def convert(data: dict[str, Any], model: dict[str, Any]) -> Conversion:
    out = Conversion()
    out.set("stage", "sft", "(default)")
    source = {**data, **model}
    if "pretrain" in source:
        _pretrain(out, source.pop("pretrain"))
    if "peft" in source:
        out.set("adapter.type", "lora", "peft")
        for key, value in _block(out, "peft", source.pop("peft"), PEFT).items():
            if key == "bias" and value in ("none", None):
                continue
            out.unmapped.append((f"peft.{key}", "not a LoRA setting lmforge takes"))
    else:
        out.set("adapter.type", "full", "(no peft block)")
    if "quant" in source:
        _quant(out, source.pop("quant"))
    if "optim" in source:
        for key in _block(out, "optim", source.pop("optim"), OPTIM):
            out.unmapped.append((f"optim.{key}", "lmforge's optimizer settings are "
                                 "train.optimizer, learning_rate, weight_decay"))
    if "datamodule" in source:
        _datamodule(out, source.pop("datamodule"))
    if "metrics" in source:
        _metrics(out, source.pop("metrics"))
    tok = source.pop("tokenizer", None) or {}
    for key, value in (tok.items() if isinstance(tok, dict) else []):
        if key != "manual_add_eos_token":
            out.unmapped.append((f"tokenizer.{key}", "not a tokenizer setting lmforge takes"))
    cfg = source.pop("config", None) or {}
    for key in (cfg if isinstance(cfg, dict) else []):
        if key != "use_cache":
            out.unmapped.append((f"config.{key}", "lmforge does not edit the model config "
                                 "(model.rope_scaling is the one it sets)"))
    apply(source, out, "CausalLM-Lit", origin=LIT)
    return out
