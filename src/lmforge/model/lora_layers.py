"""``adapter.layers_to_transform``: LoRA on some decoder layers only, through peft's own option.

peft's ``LoraConfig(layers_to_transform=[...])`` adapts only the modules whose name holds
``<layer list>.<index>.``; it refuses the ``all-linear`` shorthand there (a string), so for that
case the names of the linear modules inside the decoder layers are listed here, as peft itself
would find them. A negative number -N means the last N layers of this model.

Nothing else is needed for the backward pass to stop at the lowest adapted layer: with frozen
embeddings, the hidden states below that layer do not require grad, so autograd records nothing
there (tests/integration/test_layers_to_transform.py checks it). peft and TRL only turn on
``enable_input_require_grads`` (which would make every layer's input require grad) for gradient
checkpointing, where the recomputed blocks need a grad-requiring input.
"""

from __future__ import annotations

from lmforge.config.adapter import AdapterConfig
from lmforge.errors import ConfigError, ModelError


def layer_list(model) -> str:
    """The name of the decoder layer list: the ModuleList holding the most parameters."""
    import torch

    best, size = None, -1
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module):
            n = sum(p.numel() for p in module.parameters())
            if n > size:
                best, size = name, n
    if best is None:
        raise ModelError("adapter: could not find the model's list of decoder layers")
    return best


def layer_indices(cfg: AdapterConfig, n_layers: int) -> list[int]:
    """The adapted layer indices, checked against the model's ``n_layers``."""
    wanted = cfg.layers_to_transform
    if isinstance(wanted, int):
        if -wanted > n_layers:
            raise ConfigError(f"adapter.layers_to_transform: {wanted} asks for the last "
                              f"{-wanted} layers but the model has {n_layers}",
                              hint=f"use a number from -1 to -{n_layers}, or leave it out for "
                              "every layer")
        return list(range(n_layers + wanted, n_layers))
    bad = sorted(i for i in wanted if i >= n_layers)
    if bad:
        raise ConfigError(f"adapter.layers_to_transform: layer(s) {bad} do not exist (the model "
                          f"has layers 0 to {n_layers - 1})",
                          hint="or write -N for the last N layers")
    return sorted(set(wanted))


def _linear_names(layers) -> list[str]:
    import torch
    from transformers.pytorch_utils import Conv1D

    return sorted({name.rsplit(".", 1)[-1] for name, m in layers.named_modules()
                   if isinstance(m, (torch.nn.Linear, Conv1D))})


def layer_options(cfg: AdapterConfig, model, targets) -> dict:
    """Keyword arguments for a peft LoRA/AdaLoRA config: ``target_modules`` (all-linear spelled
    out when layers are chosen), and ``layers_to_transform`` + ``layers_pattern`` when set."""
    if cfg.layers_to_transform is None:
        return {"target_modules": targets}
    if model is None:
        raise ValueError("layers_to_transform needs the model (its number of layers)")
    path = layer_list(model)
    layers = model.get_submodule(path)
    if isinstance(targets, str):
        if targets.lower() != "all-linear":
            raise ConfigError("adapter.layers_to_transform needs target_modules as 'all-linear' "
                              f"or a list of module names (got the pattern '{targets}')")
        targets = _linear_names(layers)
    return {"target_modules": targets,
            "layers_to_transform": layer_indices(cfg, len(layers)),
            "layers_pattern": path.rsplit(".", 1)[-1]}
