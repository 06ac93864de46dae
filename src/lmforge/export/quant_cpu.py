"""CPU-friendly quantized exports with torchao (extra ``quant-cpu``): ``--quantize int8|int4``.

The merged model is saved in float (as ``--merge`` does), reloaded with a
``TorchAoConfig`` (weight-only quantization of every ``nn.Linear``; the embeddings, the norms and
a tied output projection stay in the float dtype) and saved again as safetensors with torchao's
tensor metadata. Plain ``AutoModelForCausalLM.from_pretrained(OUT)`` loads it back quantized on
CPU (torchao installed); no ``quantization_config`` is needed at load time.

- ``int8``: ``Int8WeightOnlyConfig``: one int8 per weight, one scale per output row.
- ``int4``: ``IntxWeightOnlyConfig(int4, groups of 32)``: 4-bit values with a scale and zero
  point per 32 weights. torchao 0.18 has no packed 4-bit weight format for x86 CPUs that
  safetensors can store (its packed CPU kernels are ARM/KleidiAI or source builds, and those
  tensors are not serialisable), so the 4-bit values are stored one per byte: int4's rounding at
  int8's size. The CLI says so; for a 4-bit file that a CPU runs fast, use ``--gguf --gguf-type
  q4_0`` (llama.cpp).

bitsandbytes' ``--quantize 4|8`` stays the GPU option (``export.merge``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lmforge.export.merge import SIDE_FILES, ExportError

SCHEMES = {
    "int8": "int8 weight-only (torchao Int8WeightOnlyConfig, per-row scales)",
    "int4": "int4 weight-only (torchao IntxWeightOnlyConfig, groups of 32; stored one value "
            "per byte)",
}
INT4_NOTE = ("int4: torchao has no packed 4-bit CPU format that safetensors can store, so the "
             "4-bit values take a byte each (no smaller than int8); for a small 4-bit CPU model "
             "use --gguf --gguf-type q4_0 with llama.cpp")


def require_torchao(scheme: str) -> None:
    """Fail before any model loads when torchao is missing (the CLI calls this first)."""
    import importlib.util

    if scheme not in SCHEMES:
        raise ExportError(f"--quantize {scheme}: unknown scheme", "use int8 or int4 (torchao, "
                          "CPU) or 4 / 8 (bitsandbytes, GPU)")
    if importlib.util.find_spec("torchao") is None:
        raise ExportError(f"--quantize {scheme} needs the package 'torchao', which is not "
                          "installed", "pip install 'lmforge[quant-cpu]'  (or: pip install "
                          "torchao)")


def torchao_config(scheme: str):
    import torch
    from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup
    from transformers import TorchAoConfig

    if scheme == "int8":
        return TorchAoConfig(Int8WeightOnlyConfig())
    return TorchAoConfig(IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)))


def weights_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in Path(directory).glob("*.safetensors"))


def quantize_dir(out: Path, scheme: str, dtype) -> dict:
    """Replace the float model saved in ``out`` by its torchao-quantized version; the sizes."""
    from transformers import AutoModelForCausalLM

    float_bytes = weights_bytes(out)
    tmp = out.with_name(out.name + ".float-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    out.rename(tmp)
    try:
        out.mkdir()
        model = AutoModelForCausalLM.from_pretrained(str(tmp), dtype=dtype, device_map="cpu",
                                                     quantization_config=torchao_config(scheme))
        model.save_pretrained(str(out))
        for f in SIDE_FILES + ("lmforge_export.json", "README.md"):
            if (tmp / f).is_file():
                shutil.copy2(tmp / f, out / f)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    size = weights_bytes(out)
    return {"quantization": scheme, "quantization_method": "torchao",
            "float_size_bytes": float_bytes, "size_bytes": size,
            "compression": round(float_bytes / size, 2) if size else None}


def _card_section(info: dict) -> str:
    mib = 2 ** 20
    return "\n".join([
        "", "## Quantization", "",
        f"{SCHEMES[info['quantization']]}; linear layers quantized, embeddings and norms kept in "
        f"{info['dtype']}. Weights: {info['size_bytes'] / mib:.1f} MiB "
        f"({info['float_size_bytes'] / mib:.1f} MiB in {info['dtype']}, "
        f"{info['compression']}x smaller).", "",
        "Loads on CPU with torchao installed (`pip install torchao`):", "",
        "```python\nfrom transformers import AutoModelForCausalLM\n"
        "model = AutoModelForCausalLM.from_pretrained(PATH)  # quantized, no extra arguments\n```",
        ""])


def export_quantized(source: str | Path, out: str | Path, scheme: str, dtype: str = "auto",
                     dequantize: bool = False, base: str | None = None):
    """``lmforge export SRC --out OUT --quantize int8|int4``: merge (when there is an adapter),
    save, quantize with torchao in place; returns the ExportResult with the sizes in ``info``."""
    from lmforge.export.merge import export
    from lmforge.export.source import inspect_source

    require_torchao(scheme)
    src = inspect_source(source, base)
    if src.kind == "adapter" and not src.mergeable:
        raise ExportError(f"--quantize {scheme}: a {src.method} adapter cannot be merged into "
                          "the weights, so there is no standalone model to quantize")
    result = export(source, out, merge=True, dtype=dtype, dequantize=dequantize, base=base)
    import torch

    figures = quantize_dir(result.out, scheme, getattr(torch, result.info["dtype"]))
    result.info.update(figures)
    if scheme == "int4":
        result.messages.append(INT4_NOTE)
    out = result.out
    (out / "lmforge_export.json").write_text(json.dumps(result.info, indent=2),
                                             encoding="utf-8")
    card = out / "README.md"
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        card.write_text(text.rstrip("\n") + "\n" + _card_section(result.info), encoding="utf-8")
    return result
