"""The model card (README.md) of a run and of an export: base, method, data, training settings,
metrics and how to load it with lmforge, transformers and peft.

``write_run_card(run_dir)`` runs at the end of every training run (``stages.run``) and replaces the
empty template peft writes; ``write_card(out, src, info)`` is the same card for ``lmforge
export``. The base is named as the adapter names it (model/portable.py: ``builtin:<name>``, a hub
id, a path relative to the directory, or an absolute path), and the loading code is written out
for that kind of name, since plain transformers and peft cannot resolve ``builtin:`` themselves.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

_METRICS = ("train_loss", "eval_loss", "eval_perplexity", "global_step", "train_examples",
            "train_tokens", "trainable_parameters", "total_parameters")
_TRAIN_KEYS = ("epochs", "max_steps", "learning_rate", "lr_scheduler", "warmup_ratio",
               "batch_size", "gradient_accumulation_steps", "weight_decay", "seed")


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_tree(src) -> dict:
    import yaml

    from lmforge.config.constants import RUN_CONFIG_FILE

    if src.run_dir is None:
        return {}
    try:
        tree = yaml.safe_load((src.run_dir / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return tree if isinstance(tree, dict) else {}


def run_metrics(src) -> dict:
    for d in (src.path, src.run_dir):
        if d is not None and (d / "metrics.json").is_file():
            return _json(d / "metrics.json")
    return {}


def data_fingerprint(src, metrics: dict) -> str | None:
    """The fingerprint the data pipeline recorded for the run, wherever it put it."""
    for key in ("data_fingerprint", "fingerprint"):
        if metrics.get(key):
            return str(metrics[key])
    for d in {src.path, src.run_dir} - {None}:
        for f in sorted(d.glob("data*.json")):
            found = _json(f).get("fingerprint") or _json(f).get("data_fingerprint")
            if found:
                return str(found)
    return None


def _method_line(src) -> str:
    a = src.adapter_config
    if src.kind != "adapter":
        return src.method
    parts = [src.method]
    if a.get("peft_type") in ("LORA", "ADALORA"):
        r = a.get("init_r") or a.get("r")
        parts.append(f"r={r}, alpha={a.get('lora_alpha')}")
        if a.get("use_rslora"):
            parts.append("rsLoRA")
        if a.get("modules_to_save"):
            parts.append(f"fully trained: {', '.join(a['modules_to_save'])}")
    elif a.get("num_virtual_tokens"):
        parts.append(f"{a['num_virtual_tokens']} virtual tokens")
    return ", ".join(parts)


def _names(value) -> str:
    """data.train / data.eval as written: a path, a registry name, a list, {path, weight}s."""
    items = value if isinstance(value, list) else [value]
    shown = []
    for item in items:
        if isinstance(item, dict):
            weight = f" (weight {item['weight']})" if item.get("weight") not in (None, 1) else ""
            item = f"{item.get('path') or item.get('name') or item}{weight}"
        shown.append(f"`{item}`" if isinstance(item, str) else str(item))
    return ", ".join(shown)


def _data_lines(tree: dict, src, metrics: dict) -> list[str]:
    data = tree.get("data") or {}
    lines = []
    if data.get("train") is not None:
        lines.append(f"- training data: {_names(data['train'])}"
                     + (f", format {data['format']}" if data.get("format") else "")
                     + (f", max_length {data['max_length']}" if data.get("max_length") else ""))
    if isinstance(data.get("eval"), float):
        lines.append(f"- held-out data: {data['eval']:.0%} of the training data")
    elif data.get("eval"):
        lines.append(f"- held-out data: {_names(data['eval'])}")
    if metrics.get("train_examples"):
        lines.append(f"- training examples: {int(metrics['train_examples'])}")
    lines.append(f"- data fingerprint: {data_fingerprint(src, metrics) or 'not recorded'}")
    return lines


def _training_lines(tree: dict) -> list[str]:
    train = tree.get("train") or {}
    shown = {k: train[k] for k in _TRAIN_KEYS if train.get(k) not in (None, [], {})}
    if train.get("max_steps", -1) not in (None, -1):
        shown.pop("epochs", None)  # max_steps decides
    else:
        shown.pop("max_steps", None)
    stage = tree.get("stage")
    method = tree.get(stage) if stage else None
    if isinstance(method, dict):
        shown.update({f"{stage}.{k}": v for k, v in method.items()
                      if isinstance(v, (int, float, str)) and not isinstance(v, bool)})
    if not shown:
        return []
    return (["", "## Training", "", "| setting | value |", "|---|---|"]
            + [f"| {k} | {v} |" for k, v in shown.items()]
            + ["", "Every setting is in `lmforge_config.yaml` (the resolved run config); train "
               "again with `lmforge train lmforge_config.yaml`."])


def _base_lines(base: str) -> list[str]:
    from lmforge.model.portable import is_relative
    from lmforge.utils.builtin import is_builtin

    if is_builtin(base):
        return ["from lmforge.utils.builtin import resolve",
                f"BASE = resolve({json.dumps(base)})  # lmforge's built-in model (built offline "
                "once)"]
    if is_relative(base):
        return ["import os", f"BASE = os.path.join(PATH, {json.dumps(base)})  # stored relative "
                "to this directory"]
    return [f"BASE = {json.dumps(base)}"]


def _usage(info: dict, name: str, base: str) -> str:
    path = f'PATH = {json.dumps(name)}  # this directory'
    if info["artifact"] == "model":
        return ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
                f"{path}\ntok = AutoTokenizer.from_pretrained(PATH)\n"
                "model = AutoModelForCausalLM.from_pretrained(PATH)\n```\n\n"
                f"```bash\nlmforge chat {name}\n```")
    lines = ["```python", "from peft import PeftModel",
             "from transformers import AutoModelForCausalLM, AutoTokenizer", "", path,
             *_base_lines(base), "tok = AutoTokenizer.from_pretrained(PATH)",
             "model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), PATH)"]
    from lmforge.model.portable import is_relative
    from lmforge.utils.builtin import is_builtin

    if not (is_builtin(base) or is_relative(base)):
        lines.append("# or in one line: peft.AutoPeftModelForCausalLM.from_pretrained(PATH)")
    lines += ["```", "", "```bash", f"lmforge chat {name}        # resolves the base by itself",
              f"lmforge export {name} --merge --out {name}-merged   # a standalone model", "```"]
    return "\n".join(lines)


def _number(v) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) >= 1:
        return f"{int(v):,}"  # counts (metrics.json keeps every number a float)
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _card_base(out: Path, src, info: dict, tree: dict) -> str:
    """The base as the adapter in ``out`` names it; for a model, what the run started from;
    either as portable as it can be named (model/portable.py), seen from ``out``."""
    from lmforge.config.model import ModelConfig
    from lmforge.model.portable import base_name

    written = _json(out / "adapter_config.json").get("base_model_name_or_path")
    if written and info["artifact"] == "adapter":
        return str(written)
    model = src.base if src.kind == "adapter" else None
    if model is None and isinstance(tree.get("model"), dict):
        try:
            model = ModelConfig.model_validate(tree["model"])
        except ValueError:
            model = None
    if model is None:
        return info["base"]
    return base_name(model, out) or model.path


def write_card(out: Path, src, info: dict) -> Path:
    from lmforge import __version__

    metrics = run_metrics(src)
    tree = _run_tree(src)
    base = _card_base(out, src, info, tree)
    lib = "transformers" if info["artifact"] == "model" else "peft"
    lines = ["---", f"library_name: {lib}", f"base_model: {json.dumps(base)}",
             "tags: [lmforge" + (f", {info['stage']}" if info.get("stage") else "") +
             f", {src.method}]", "---", "", f"# {out.name}", "",
             f"Fine-tuned with lmforge {__version__}.", "",
             f"- base model: `{base}`", f"- method: {_method_line(src)}"]
    if info.get("stage"):
        lines.append(f"- stage: {info['stage']}")
    what = "standalone model" if info["artifact"] == "model" else "peft adapter"
    how = ", adapter merged into the base" if info["merged"] else ""
    if info.get("dequantized"):
        how += " (base de-quantized for the merge)"
    if info.get("quantized_bits"):
        how += f", saved {info['quantized_bits']}-bit (bitsandbytes)"
    dtype = f", dtype {info['dtype']}" if info.get("dtype") else ""
    lines.append(f"- artifact: {what}{how}{dtype}")
    lines += _data_lines(tree, src, metrics)
    lines += _training_lines(tree)
    shown = {k: metrics[k] for k in _METRICS if k in metrics}
    shown.update({k: v for k, v in metrics.items() if k.startswith("eval_") and k not in shown})
    if shown:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_number(v)} |" for k, v in shown.items()]
    lines += ["", "## Use", "", _usage(info, out.name, base), ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_run_card(run_dir: str | Path) -> Path | None:
    """README.md of a finished run (see the module docstring); None when the directory holds no
    saved model or adapter (the card is then skipped, with a log line)."""
    from lmforge.errors import LmforgeError
    from lmforge.export.source import inspect_source

    run = Path(run_dir)
    try:
        src = inspect_source(run)
    except LmforgeError as exc:
        log.info("no model card for %s: %s", run, exc.message)
        return None
    dtype = _json(run / "config.json").get("dtype") or _json(run / "config.json").get(
        "torch_dtype")
    info = {"base": src.base.path, "artifact": "adapter" if src.kind == "adapter" else "model",
            "merged": False, "dtype": dtype, "stage": src.stage}
    if src.kind == "model" and src.run_adapter is not None and src.run_adapter.is_peft:
        info["merged"] = True  # e.g. a reward model saved merged (its adapter in adapter/)
    return write_card(run, src, info)
