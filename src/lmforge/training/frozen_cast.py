"""Store frozen linear weights in bfloat16 once, for CPU bf16 autocast.

Why our own: torch's autocast keeps a cast cache only for leaf tensors that require grad, so under
CPU bf16 autocast every *frozen* float32 weight (the whole base model of a LoRA run, every weight
at inference) is cast to bfloat16 again on every forward pass. Measured on SmolLM2-135M on the
2-core Xeon: `aten::copy_` was 17 % of a LoRA training step and 29 % of label scoring. Casting the
frozen ``nn.Linear`` weights once gives the very numbers autocast computes (a linear under autocast
runs on ``weight.to(bfloat16)``, which is exactly what is stored), in less time and memory;
``tests/invariants/test_frozen_cast.py`` checks losses, gradients and outputs are unchanged.

Once anything was cast, the weights left as they were are copied out of the checkpoint's memory
map (``own_rest``): transformers loads safetensors as views into the mapped file, so the float32
embedding alone kept the whole file mapped, and the mapped pages of the linears already cast
(unused) counted in the process's memory. Measured on SmolLM2-135M: resident memory after loading
1.11 GB instead of 0.81 GB.

Left as they are: anything that requires grad (LoRA matrices, fully trained layers), quantized
weights (not float32), weights shared with the input embeddings (a tied LM head: the embedding
feeds the float32 residual stream, which autocast does not cast), and layers of other types.
"""

from __future__ import annotations


def cast_frozen_linears(model, dtype=None, inference: bool = False) -> int:
    """Cast the frozen float32 ``nn.Linear`` weights (and biases) of ``model`` to ``dtype``
    (default bfloat16) in place; returns how many layers were cast. ``inference``: the model
    never trains, so every such layer counts as frozen, whatever its ``requires_grad`` (left as
    loaded: autocast caches the cast of the tied LM head only while it requires grad, and a
    generation's decoding steps reuse that cache). Only for a model whose forward passes all run
    under autocast to ``dtype``: outside it, a cast layer would meet float32 inputs and fail."""
    import torch

    dtype = dtype or torch.bfloat16
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = embeddings.weight if embeddings is not None else None
    cast = 0
    for module in model.modules():
        if type(module) is not torch.nn.Linear:  # subclasses: quantized / custom layers
            continue
        weight, bias = module.weight, module.bias
        trains = not inference and (weight.requires_grad or
                                    (bias is not None and bias.requires_grad))
        if weight is tied or trains or weight.dtype != torch.float32:
            continue
        if bias is not None and bias.dtype != torch.float32:
            continue
        weight.data = weight.data.to(dtype)
        if bias is not None:
            bias.data = bias.data.to(dtype)
        cast += 1
    if cast:
        own_rest(model, dtype)
    return cast


def own_rest(model, cast_dtype) -> None:
    """Copy every parameter and buffer of ``model`` not of ``cast_dtype`` into memory of its own,
    each tensor once, keeping tensors that shared memory (a tied LM head) shared."""
    import torch

    copies: dict[int, torch.Tensor] = {}
    done: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            tensors = list(module.named_parameters(recurse=False)) + \
                list(module.named_buffers(recurse=False))
            for name, tensor in tensors:
                if tensor is None or id(tensor) in done or tensor.dtype == cast_dtype \
                        or tensor.device.type != "cpu" or tensor.is_meta:
                    continue
                done.add(id(tensor))
                key = tensor.untyped_storage().data_ptr()
                if key not in copies:
                    copies[key] = tensor.data.clone()
                if isinstance(tensor, torch.nn.Parameter):
                    tensor.data = copies[key]
                else:
                    module._buffers[name] = copies[key]
