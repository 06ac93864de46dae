"""Attach the training method (``adapter:``) to a loaded base model."""

from __future__ import annotations

import logging

from lmforge.config.adapter import AdapterConfig
from lmforge.errors import ConfigError

log = logging.getLogger(__name__)


def lora_config(cfg: AdapterConfig):
    from peft import LoraConfig, TaskType

    return LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.r, lora_alpha=cfg.alpha,
                      lora_dropout=cfg.dropout, target_modules=cfg.target_modules,
                      modules_to_save=list(cfg.modules_to_save) or None,
                      use_dora=cfg.use_dora, use_rslora=cfg.use_rslora)


def _freeze(model, cfg: AdapterConfig):
    layers = None
    for name, module in model.named_modules():
        if name.endswith("layers") and hasattr(module, "__len__"):
            layers = name
            break
    if layers is None:
        raise ConfigError("adapter.type freeze: could not find the model's layer list")
    n_layers = len(model.get_submodule(layers))
    first = max(0, n_layers - cfg.trainable_layers)
    keep = [f"{layers}.{i}." for i in range(first, n_layers)]
    for name, param in model.named_parameters():
        param.requires_grad = any(k in name for k in keep) or any(
            m in name for m in cfg.trainable_modules)
    return model


def attach(model, cfg: AdapterConfig):
    """Return the model ready to train with the configured method."""
    if cfg.type == "full":
        return model
    if cfg.type == "freeze":
        return _freeze(model, cfg)
    from peft import PeftModel, get_peft_model

    if cfg.path:
        return PeftModel.from_pretrained(model, cfg.path, is_trainable=True)
    if cfg.type == "lora":
        return get_peft_model(model, lora_config(cfg))
    raise ConfigError(f"adapter.type: '{cfg.type}' is not available in this build yet")
