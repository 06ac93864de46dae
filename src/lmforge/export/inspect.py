"""Model facts for ``lmforge info``: architecture, sizes, parameter counts, template, adapter.

Parameters are counted on a meta-device copy (accelerate's ``init_empty_weights``), so even a large
model is inspected without allocating its weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmforge.errors import ModelError


def _adapter_info(adapter: str) -> dict:
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
    return {"adapter_type": cfg.get("peft_type"), "adapter_rank": cfg.get("r"),
            "adapter_target_modules": cfg.get("target_modules"),
            "adapter_base": cfg.get("base_model_name_or_path"), "adapter_parameters": n}


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def model_info(path: str, adapter: str | None = None, trust_remote_code: bool = False) -> dict:
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from lmforge.utils.builtin import resolve

    path = resolve(path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read a model config from '{path}': {exc}") from exc
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    total = sum(p.numel() for p in model.parameters())
    text_cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
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
        "dtype": str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)),
        "parameters": total,
        "trainable_parameters": total,
        "chat_template": _has_template(Path(path)),
    }
    if adapter:
        info.update(_adapter_info(adapter))
        info["trainable_parameters"] = info["adapter_parameters"]
    return info


def _has_template(p: Path) -> bool:
    if (p / "chat_template.jinja").is_file() or (p / "chat_template.json").is_file():
        return True
    tc = p / "tokenizer_config.json"
    return tc.is_file() and bool(json.loads(tc.read_text()).get("chat_template"))
