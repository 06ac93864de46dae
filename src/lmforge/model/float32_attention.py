"""Float32 attention where gradients flow, under CPU bf16 autocast (``train.precision: bf16``).

CPU autocast runs ``scaled_dot_product_attention`` in bfloat16, and torch's CPU flash-attention
backward in bfloat16 is slow for the short rows of fine-tuning data: at batch 8 x 160 tokens
(SmolLM2's 9 heads of 64) forward + backward took 17.1 ms in bfloat16 and 11.7 ms in float32
(AMD EPYC with AVX512-BF16, 2 threads; on a Xeon with AMX an earlier session measured the bf16
backward alone at 23.1 ms). The query, key and value reach the kernel in float32 already (the
projections' outputs, or autocast would cast them down), so the attention of a layer whose
inputs need gradients runs with autocast off: float32, faster, and more precise than bf16. A
layer without gradients (a frozen lower layer, inference) keeps bf16 attention as before.

Registered through transformers' public ``AttentionInterface`` / ``AttentionMaskInterface``
(transformers' own SDPA function and SDPA mask) under ``lmforge_sdpa_f32grad``; chosen by
``training/device.py`` (``cpu_attention == "float32"``) for models whose attention is SDPA.
Gradient checkpointing (non-reentrant, as the loader sets it) recomputes with gradients enabled,
so the recompute takes the same path as the forward pass.
"""

from __future__ import annotations

import torch

NAME = "lmforge_sdpa_f32grad"
MODELS = ("llama", "qwen2", "qwen3", "mistral")  # attention through the public interface


def float32_grad_attention(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA; with autocast off and float32 inputs where the query needs a
    gradient under CPU autocast."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward as sdpa

    if not (query.requires_grad and query.device.type == "cpu"
            and torch.is_autocast_enabled("cpu")):
        return sdpa(module, query, key, value, attention_mask, **kwargs)
    with torch.autocast("cpu", enabled=False):
        return sdpa(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)


def register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, float32_grad_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def use_float32_attention(model) -> bool:
    """Switch ``model`` (transformers or peft) to this path when its attention is SDPA."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in MODELS \
            or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    register()
    config._attn_implementation = NAME
    return True
