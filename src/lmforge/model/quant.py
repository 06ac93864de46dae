"""bitsandbytes quantization: the config QLoRA loads its base with, and k-bit preparation.

bitsandbytes (>= 0.45) runs 4-bit and 8-bit layers on the CPU too, so QLoRA trains there (slowly);
4-bit on the CPU needs every quantized linear layer's output size to be a multiple of 32.
"""

from __future__ import annotations

import logging
import warnings

from lmforge.errors import require

log = logging.getLogger(__name__)


def bnb_config(bits: int, quant_type: str = "nf4", double_quant: bool = True, dtype=None):
    """A transformers ``BitsAndBytesConfig`` for ``bits`` (4 or 8)."""
    import torch
    from transformers import BitsAndBytesConfig

    require("bitsandbytes", "qlora", f"{bits}-bit quantization")
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=quant_type,
                              bnb_4bit_use_double_quant=double_quant,
                              bnb_4bit_compute_dtype=dtype or torch.float32)


def quantized_bits(model) -> int | None:
    """4 or 8 when the model's linear layers are bitsandbytes-quantized, else None."""
    if getattr(model, "is_loaded_in_4bit", False):
        return 4
    if getattr(model, "is_loaded_in_8bit", False):
        return 8
    return None


def prepare_kbit(model):
    """peft's k-bit preparation (freeze the base, norms in fp32), keeping activation checkpointing
    as model.gradient_checkpointing configured it at load time (non-reentrant, so the inputs need
    no grad hook). peft's own checkpointing switch is left off: it calls the
    ``gradient_checkpointing_enable`` alias that transformers 6 removes."""
    from peft import prepare_model_for_kbit_training

    # bitsandbytes warns on every 8-bit matmul that it casts fp32 inputs to fp16
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt: inputs will be cast.*")
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
