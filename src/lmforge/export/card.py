"""A short model card (README.md) for an export: base, method, data fingerprint, metrics, usage."""

from __future__ import annotations

import json
from pathlib import Path

_METRICS = ("train_loss", "eval_loss", "eval_perplexity", "global_step", "train_examples",
            "train_tokens", "trainable_parameters", "total_parameters")


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
    elif a.get("num_virtual_tokens"):
        parts.append(f"{a['num_virtual_tokens']} virtual tokens")
    return ", ".join(parts)


def _usage(info: dict) -> str:
    if info["artifact"] == "model":
        return ("```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
                "tok = AutoTokenizer.from_pretrained(PATH)\n"
                "model = AutoModelForCausalLM.from_pretrained(PATH)\n```")
    return ("```python\nfrom peft import PeftModel\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "tok = AutoTokenizer.from_pretrained(PATH)\n"
            "model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), PATH)"
            "\n```")


def write_card(out: Path, src, info: dict) -> Path:
    from lmforge import __version__

    metrics = run_metrics(src)
    fingerprint = data_fingerprint(src, metrics)
    lib = "transformers" if info["artifact"] == "model" else "peft"
    lines = ["---", f"library_name: {lib}", f"base_model: {json.dumps(info['base'])}",
             "tags: [lmforge" + (f", {info['stage']}" if info.get("stage") else "") +
             f", {src.method}]", "---", "", f"# {out.name}", "",
             f"Fine-tuned with lmforge {__version__}.", "",
             f"- base model: `{info['base']}`", f"- method: {_method_line(src)}"]
    if info.get("stage"):
        lines.append(f"- stage: {info['stage']}")
    what = "standalone model" if info["artifact"] == "model" else "peft adapter"
    how = ", adapter merged into the base" if info["merged"] else ""
    if info.get("dequantized"):
        how += " (base de-quantized for the merge)"
    if info.get("quantized_bits"):
        how += f", saved {info['quantized_bits']}-bit (bitsandbytes)"
    lines.append(f"- artifact: {what}{how}, dtype {info['dtype']}")
    lines.append(f"- data fingerprint: {fingerprint or 'not recorded'}")
    shown = {k: metrics[k] for k in _METRICS if k in metrics}
    shown.update({k: v for k, v in metrics.items() if k.startswith("eval_") and k not in shown})
    if shown:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in shown.items()]
    lines += ["", "## Use", "", _usage(info), ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
