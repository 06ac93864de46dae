"""``lmforge export``: one artifact that loads unchanged in plain transformers / peft.

- ``--merge``: LoRA, DoRA and AdaLoRA adapters are folded into the base (peft's
  ``merge_and_unload``, done in float32) and a standalone model is saved: safetensors weights,
  tokenizer with the run's chat template, generation config.
- A QLoRA adapter was trained against 4/8-bit weights; folding it into quantized weights is not
  possible, so merging needs ``--dequantize``: the base is loaded unquantized and merged.
- ``--quantize 4|8`` saves the (merged) model quantized with bitsandbytes.
- Prompt, prefix and P-tuning adapters add virtual tokens instead of changing weights: they cannot
  merge and are exported as adapters, with a message saying so.
Every export gets a README.md model card and ``lmforge_export.json`` (provenance).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.errors import LmforgeError
from lmforge.export.source import Source, inspect_source

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "chat_template.jinja", "chat_template.json", "generation_config.json",
              "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json")


class ExportError(LmforgeError):
    """An export the options do not allow (exit code 2, like a usage error)."""

    exit_code = 2
    default_hint = "see `lmforge export --help`"


@dataclass
class ExportResult:
    out: Path
    artifact: str  # "model" or "adapter"
    merged: bool
    messages: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _check(src: Source, merge: bool, quantize: int | None, dequantize: bool) -> list[str]:
    notes = []
    if src.kind == "adapter" and not src.mergeable:
        if quantize:
            raise ExportError(f"--quantize: a {src.method} adapter cannot be merged into the "
                              "weights, so there is no standalone model to quantize")
        if merge:
            notes.append(f"{src.method} adds learned virtual tokens instead of changing weights, "
                         "so it cannot be merged; exported as a peft adapter (load it with "
                         "PeftModel.from_pretrained on the base model)")
        return notes
    if src.kind == "adapter" and quantize and not merge:
        raise ExportError("--quantize needs --merge for an adapter (it quantizes the merged model)")
    if src.kind == "adapter" and merge and src.quantized_base and not dequantize:
        bits = src.run_adapter.bits if src.run_adapter else "k"
        raise ExportError(f"--merge: this adapter was trained on a {bits}-bit quantized base "
                          "(qlora); merging into quantized weights is not supported",
                          "add --dequantize: the base is loaded unquantized, the adapter merged "
                          "into it and the result saved (add --quantize 4 to quantize it again)")
    if src.kind == "model" and merge:
        notes.append("the source is a full model (no adapter): nothing to merge")
    return notes


def _dtype(name: str, src: Source):
    import torch

    if name != "auto":
        return getattr(torch, name)
    if src.base.dtype != "auto":
        return getattr(torch, src.base.dtype)
    from lmforge.model.loader import model_dir

    cfg_file = Path(model_dir(src.base)) / "config.json"
    if cfg_file.is_file():
        saved = json.loads(cfg_file.read_text()).get("dtype") or json.loads(
            cfg_file.read_text()).get("torch_dtype")
        if saved in ("float32", "bfloat16", "float16"):
            return getattr(torch, saved)
    return torch.float32


def _tokenizer(src: Source):
    from transformers import AutoTokenizer

    from lmforge.model.loader import load_tokenizer

    if src.has_tokenizer:
        return AutoTokenizer.from_pretrained(str(src.path))
    return load_tokenizer(src.base)


def load_merged(src: Source, tokenizer):
    """The base (float32, unquantized) with the adapter merged into it, or the full model."""
    from lmforge.model.loader import load_model

    base_cfg = src.base.model_copy(update={"dtype": "float32", "gradient_checkpointing": False})
    model = load_model(base_cfg, tokenizer)
    if src.kind == "model":
        return model
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, str(src.path))
    return peft_model.merge_and_unload(safe_merge=True)


def _save_model(model, tokenizer, src: Source, out: Path, dtype) -> None:
    from transformers import GenerationConfig

    model = model.to(dtype)
    model.config.use_cache = True
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    gen_file = src.path / "generation_config.json"
    gen = GenerationConfig.from_pretrained(str(src.path)) if gen_file.is_file() else (
        model.generation_config)
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
    gen.save_pretrained(str(out))


def _quantize(out: Path, bits: int, dtype) -> None:
    """Reload the float model just saved in ``out`` with bitsandbytes and save it quantized."""
    from transformers import AutoModelForCausalLM

    from lmforge.model.quant import bnb_config

    tmp = out.with_name(out.name + ".float-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    out.rename(tmp)
    try:
        q = AutoModelForCausalLM.from_pretrained(str(tmp), dtype=dtype,
                                                 quantization_config=bnb_config(bits, dtype=dtype))
        q.save_pretrained(str(out))
        for f in SIDE_FILES:
            if (tmp / f).is_file():
                shutil.copy2(tmp / f, out / f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export_adapter(src: Source, out: Path, dtype_name: str) -> None:
    """Copy the adapter (weights cast to --dtype when given) and the tokenizer files."""
    weights = src.path / "adapter_model.safetensors"
    if not weights.is_file():
        raise ExportError(f"{src.path}: no adapter_model.safetensors (only safetensors adapters "
                          "are exported)")
    out.mkdir(parents=True, exist_ok=True)
    from lmforge.model.portable import rebase

    acfg = dict(src.adapter_config)  # a base named relative to the run: relative to `out` now
    if acfg.get("base_model_name_or_path"):
        acfg["base_model_name_or_path"] = rebase(acfg["base_model_name_or_path"], src.path, out)
    (out / "adapter_config.json").write_text(json.dumps(acfg, indent=2, sort_keys=True) + "\n",
                                             encoding="utf-8")
    if dtype_name == "auto":
        shutil.copy2(weights, out / weights.name)
    else:
        import torch
        from safetensors.torch import load_file, save_file

        dtype = getattr(torch, dtype_name)
        tensors = {k: v.to(dtype) if v.is_floating_point() else v
                   for k, v in load_file(str(weights)).items()}
        save_file(tensors, str(out / weights.name), metadata={"format": "pt"})
    if src.has_tokenizer:
        for f in SIDE_FILES:
            if (src.path / f).is_file():
                shutil.copy2(src.path / f, out / f)
    else:
        _tokenizer(src).save_pretrained(str(out))


def export(source: str | Path, out: str | Path, merge: bool = False, dtype: str = "auto",
           quantize: int | None = None, dequantize: bool = False,
           base: str | None = None) -> ExportResult:
    """Export a run / adapter / model directory into ``out`` (see the module docstring)."""
    from lmforge.export.card import write_card

    src = inspect_source(source, base)
    out = Path(out)
    if out.resolve() == src.path.resolve():
        raise ExportError("--out must differ from the source directory")
    notes = _check(src, merge, quantize, dequantize)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"--out {out}: exists and is not empty", "choose a new directory")
    standalone = src.kind == "model" or (merge and src.mergeable)
    if standalone:
        tokenizer = _tokenizer(src)
        target = _dtype(dtype, src)
        out.mkdir(parents=True, exist_ok=True)
        _save_model(load_merged(src, tokenizer), tokenizer, src, out, target)
        if quantize:
            _quantize(out, quantize, target)
        dtype_name = str(target).replace("torch.", "")
    else:
        _export_adapter(src, out, dtype)
        dtype_name = dtype
    result = ExportResult(out, "model" if standalone else "adapter",
                          merged=standalone and src.kind == "adapter", messages=notes)
    result.info = {"source": str(src.path), "base": src.base.path, "method": src.method,
                   "artifact": result.artifact, "merged": result.merged, "dtype": dtype_name,
                   "quantized_bits": quantize, "dequantized": bool(dequantize and merge),
                   "stage": src.stage}
    (out / "lmforge_export.json").write_text(json.dumps(result.info, indent=2), encoding="utf-8")
    write_card(out, src, result.info)
    return result
