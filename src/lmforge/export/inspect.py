"""Model facts for ``lmforge info``: architecture, sizes, parameter counts, template, adapter, GGUF.

Parameters are counted on a meta-device copy (accelerate's ``init_empty_weights``), so even a large
model is inspected without allocating its weights. A GGUF file is described from its header (no
conversion). A run or adapter directory is shown as its base model plus the adapter: ``parameters``
counts both (``base_parameters`` the base alone), ``trainable_parameters`` the adapter's.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.config.constants import RUN_CONFIG_FILE
from lmforge.errors import ModelError


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def adapter_info(adapter: str | Path) -> dict:
    from lmforge.model.adapters import adapter_kind

    p = Path(adapter)
    cfg_file = p / "adapter_config.json"
    if not cfg_file.is_file():
        raise ModelError(f"{p}: no adapter_config.json (not a peft adapter directory)")
    cfg = json.loads(cfg_file.read_text())
    weights = p / "adapter_model.safetensors"
    n = 0
    if weights.is_file():
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as f:
            for key in f.keys():
                n += _numel(f.get_slice(key).get_shape())
    info = {"adapter_type": adapter_kind(cfg), "peft_type": cfg.get("peft_type"),
            "adapter_base": cfg.get("base_model_name_or_path"), "adapter_parameters": n}
    if cfg.get("peft_type") in ("LORA", "ADALORA"):
        targets = cfg.get("target_modules")
        if isinstance(targets, list):
            targets = sorted({t.rsplit(".", 1)[-1] for t in targets})
        info.update(adapter_rank=cfg.get("init_r") or cfg.get("r"),
                    adapter_alpha=cfg.get("lora_alpha"), adapter_target_modules=targets,
                    adapter_modules_to_save=cfg.get("modules_to_save"))
        if cfg.get("peft_type") == "ADALORA":
            info["adapter_target_rank"] = cfg.get("target_r")
    else:
        info["adapter_virtual_tokens"] = cfg.get("num_virtual_tokens")
    return info


def model_info(path: str, adapter: str | None = None, trust_remote_code: bool = False,
               gguf_file: str | None = None) -> dict:
    """Facts about a model directory / hub id / builtin name / GGUF file / run or adapter dir."""
    from lmforge.model.gguf import gguf_info
    from lmforge.utils.builtin import resolve

    if gguf_file or path.lower().endswith(".gguf"):
        return gguf_info(Path(path) / gguf_file if gguf_file else path)
    p = Path(path)
    if p.is_dir() and (p / "adapter_config.json").is_file() and not (p / "config.json").is_file():
        return _run_or_adapter_info(p, trust_remote_code)
    info = _base_info(resolve(path), trust_remote_code)
    if p.is_dir() and (p / RUN_CONFIG_FILE).is_file():  # a full / freeze run
        from lmforge.export.source import inspect_source

        src = inspect_source(p)
        info.update(method=src.method, stage=src.stage)
    if adapter:
        info.update(adapter_info(adapter))
        _with_adapter(info)
    return info


def _with_adapter(info: dict) -> None:
    """Totals of base + adapter; only the adapter trains."""
    info["base_parameters"] = info["parameters"]
    info["parameters"] = info["parameters"] + info["adapter_parameters"]
    info["trainable_parameters"] = info["adapter_parameters"]


def _run_or_adapter_info(p: Path, trust_remote_code: bool) -> dict:
    from lmforge.export.source import inspect_source
    from lmforge.model.loader import model_dir

    src = inspect_source(p)
    info = _base_info(model_dir(src.base), trust_remote_code or src.base.trust_remote_code)
    info.update(path=str(p), base_model=src.base.path, method=src.method)
    if src.stage:
        info["stage"] = src.stage
    info.update(adapter_info(p))
    _with_adapter(info)
    return info


def empty_model(path: str, trust_remote_code: bool):
    """(config, the model without weights): built from config.json on the meta device."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read a model config from '{path}': {exc}") from exc
    with init_empty_weights():
        return config, AutoModelForCausalLM.from_config(config,
                                                        trust_remote_code=trust_remote_code)


def _base_info(path: str, trust_remote_code: bool) -> dict:
    config, model = empty_model(path, trust_remote_code)
    total = sum(p.numel() for p in model.parameters())
    text_cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    rope = getattr(text_cfg, "rope_parameters", None) or {}
    quant = getattr(config, "quantization_config", None)
    if quant is not None and not isinstance(quant, dict):
        quant = quant.to_dict()
    info = {
        "path": str(path),
        "architecture": (config.architectures or [type(model).__name__])[0],
        "model_type": config.model_type,
        "layers": getattr(text_cfg, "num_hidden_layers", None),
        "hidden_size": getattr(text_cfg, "hidden_size", None),
        "attention_heads": getattr(text_cfg, "num_attention_heads", None),
        "kv_heads": getattr(text_cfg, "num_key_value_heads", None),
        "vocab_size": getattr(text_cfg, "vocab_size", None),
        "max_position_embeddings": getattr(text_cfg, "max_position_embeddings", None),
        "rope": {k: v for k, v in rope.items() if k in ("rope_type", "factor", "rope_theta")}
        if isinstance(rope, dict) else None,
        "dtype": str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)),
        "quantization": (quant or {}).get("quant_method") if quant else None,
        "parameters": total,
        "trainable_parameters": total,
        "chat_template": _has_template(Path(path)),
    }
    source = Path(path) / "lmforge_gguf_source.json"
    if source.is_file():
        info["converted_from"] = json.loads(source.read_text()).get("gguf_file")
    return info


def _has_template(p: Path) -> bool:
    if (p / "chat_template.jinja").is_file() or (p / "chat_template.json").is_file():
        return True
    tc = p / "tokenizer_config.json"
    return tc.is_file() and bool(json.loads(tc.read_text()).get("chat_template"))
