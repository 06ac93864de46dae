"""Load the tokenizer and the base model described by ``model:`` (the real ``from_pretrained``)."""

from __future__ import annotations

import logging
from pathlib import Path

from lmforge.config.model import ModelConfig
from lmforge.errors import ModelError
from lmforge.utils.builtin import resolve

log = logging.getLogger(__name__)


def model_dir(cfg: ModelConfig) -> str:
    """The directory (or hub id) to load from, after resolving ``builtin:`` names."""
    return resolve(cfg.path)


def torch_dtype(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, name)


def check_weights_are_safe(path: str, allow_pickle: bool) -> None:
    """Refuse pickle-only checkpoints unless model.allow_pickle is set (pickle runs code)."""
    p = Path(path)
    if not p.is_dir():
        return
    has_safe = any(p.glob("*.safetensors")) or (p / "model.safetensors.index.json").is_file()
    has_pickle = any(p.glob("*.bin")) or any(p.glob("*.pt")) or any(p.glob("*.pth"))
    if has_pickle and not has_safe and not allow_pickle:
        raise ModelError(f"{p} has only pickle weights (.bin/.pt); loading them can run arbitrary "
                         "code", "convert them to safetensors, or set model.allow_pickle: true if "
                         "you trust the source")


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    path = model_dir(cfg)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code,
                                            revision=cfg.revision)
    except OSError as exc:
        raise ModelError(f"cannot load a tokenizer from '{cfg.path}': {exc}") from exc
    if cfg.new_special_tokens:
        tok.add_special_tokens({"additional_special_tokens": list(cfg.new_special_tokens)})
    return tok


def load_model(cfg: ModelConfig, tokenizer=None, **extra):
    """Load the causal LM in the configured dtype and attention kernel."""
    from transformers import AutoModelForCausalLM

    path = model_dir(cfg)
    check_weights_are_safe(path, cfg.allow_pickle)
    kwargs = dict(dtype=torch_dtype(cfg.dtype), trust_remote_code=cfg.trust_remote_code,
                  revision=cfg.revision, use_safetensors=None if cfg.allow_pickle else True)
    if cfg.attn_implementation != "auto":
        kwargs["attn_implementation"] = cfg.attn_implementation
    kwargs.update(extra)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model '{cfg.path}': {exc}") from exc
    if tokenizer is not None and len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
