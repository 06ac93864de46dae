"""Executed FLOPs of a training step: the matrix products a LoRA (or full) step really runs.

The nominal figure, 6·N per token, assumes every weight gets a gradient and every position is
projected onto the vocabulary. A LoRA step does less (frozen weights get no weight gradient, the
backward pass stops at the lowest trained module) and may do more (activation checkpointing runs
the forward pass of a layer twice). Here every linear map of a decoder layer is counted on its own,
per position it runs on (``d_in``, ``d_out``, LoRA rank ``r``; 2 FLOPs per multiply-add):

- forward: ``2·d_in·d_out`` + LoRA ``2·r·(d_in + d_out)``, once per forward call of the layer
  (twice when the layer is recomputed by checkpointing: the positions are measured, see Probe);
- input gradient: ``2·d_in·d_out`` (+ ``2·r·d_in`` through LoRA A) only where the module's input
  needs a gradient: its layer's input does (something below is trained, or the trainer made the
  hidden states require grad, as checkpointing does) or a module earlier in the same layer is
  trained (q/k/v, then o, then gate/up, then down);
- LoRA: ``2·r·d_out`` for the gradient into B's input, wherever A is trained or the input needs a
  gradient, and ``2·r·(d_in + d_out)`` for the A and B weight gradients when trained;
- weight gradient of a base weight (full fine-tuning): ``2·d_in·d_out`` when it is trained;
- LM head: ``2·d·V`` forward and ``2·d·V`` input gradient per position it runs on (measured: all
  positions for a plain causal-LM loss, the trained ones for lmforge's loss), plus ``2·d·V`` when
  the head itself is trained, plus ``2·d·V`` per position whose logits the backward pass computes
  again (trl's chunked log-prob head does, to never hold the full logits).

Not counted (as in the 6·N convention): attention scores (``QKᵀ``, ``AV``), norms, activations,
RoPE, the embedding lookup and the optimizer. These are small next to the linear maps at the
lengths benchmarked here, so the executed utilisation is slightly understated.
"""

from __future__ import annotations

from dataclasses import dataclass

# the order in which a decoder layer's linear maps see the data (Llama, Qwen2, Mistral, ...)
STAGES = {"q_proj": 0, "k_proj": 0, "v_proj": 0, "o_proj": 1, "gate_proj": 2, "up_proj": 2,
          "down_proj": 3}


@dataclass(frozen=True)
class Linear:
    layer: int
    stage: int
    d_in: int
    d_out: int
    rank: int = 0  # LoRA rank, 0 without an adapter
    lora_trained: bool = False
    weight_trained: bool = False

    @property
    def trained(self) -> bool:
        return self.weight_trained or (self.rank > 0 and self.lora_trained)

    def forward(self) -> int:
        return 2 * self.d_in * self.d_out + 2 * self.rank * (self.d_in + self.d_out)

    def backward(self, input_grad: bool) -> int:
        """FLOPs per position of this map's backward pass."""
        out = 0
        if input_grad:
            out += 2 * self.d_in * self.d_out + 2 * self.rank * self.d_in
        if self.rank and (input_grad or self.lora_trained):
            out += 2 * self.rank * self.d_out  # the gradient into B's input
        if self.rank and self.lora_trained:
            out += 2 * self.rank * (self.d_in + self.d_out)  # A and B weight gradients
        if self.weight_trained:
            out += 2 * self.d_in * self.d_out
        return out


@dataclass(frozen=True)
class Shape:
    layers: int
    linears: tuple[Linear, ...]
    hidden: int
    vocab: int
    head_trained: bool = False

    def layer_trained(self, i: int) -> bool:
        return any(x.trained for x in self.linears if x.layer == i)

    def derived_input_grad(self, embedding_grad: bool = False) -> tuple[bool, ...]:
        """Whether each layer's input needs a gradient when nothing but the structure decides:
        the embeddings' output does, or a layer below is trained."""
        out, below = [], embedding_grad
        for i in range(self.layers):
            out.append(below)
            below = below or self.layer_trained(i)
        return tuple(out)

    def per_position(self, input_grad: tuple[bool, ...]) -> dict[str, list[int]]:
        """Per layer: forward FLOPs and backward FLOPs per position (backward 0 where no
        gradient flows: the layer's input needs none and nothing in it is trained)."""
        fwd, bwd = [0] * self.layers, [0] * self.layers
        for i in range(self.layers):
            mods = [x for x in self.linears if x.layer == i]
            for x in mods:
                grad_in = input_grad[i] or any(m.trained for m in mods if m.stage < x.stage)
                fwd[i] += x.forward()
                bwd[i] += x.backward(grad_in)
        return {"forward": fwd, "backward": bwd}


def executed_flops(shape: Shape, positions: int, head_positions: int,
                   input_grad: tuple[bool, ...] | None = None,
                   layer_positions: list[int] | None = None,
                   checkpointed: bool = False, head_recompute: int = 0) -> dict[str, int]:
    """FLOPs of the matrix products of training steps over ``positions`` computed positions
    (padding included: it is computed) and ``head_positions`` positions through the LM head.

    ``layer_positions``: the positions each layer's forward pass really ran on (measured; more
    than ``positions`` where checkpointing recomputed it); without it, each layer whose backward
    runs is recomputed once when ``checkpointed``. ``input_grad``: per layer, whether its input
    needed a gradient (measured); without it, derived from the structure. ``head_recompute``:
    positions whose logits the backward pass computes again (trl's chunked log-prob head)."""
    grads = input_grad if input_grad is not None else shape.derived_input_grad()
    per = shape.per_position(grads)
    runs_backward = [b > 0 for b in per["backward"]]
    if layer_positions is None:
        layer_positions = [positions * (2 if checkpointed and runs_backward[i] else 1)
                           for i in range(shape.layers)]
    first = sum(per["forward"][i] * positions for i in range(shape.layers))
    forward_all = sum(per["forward"][i] * layer_positions[i] for i in range(shape.layers))
    backward = sum(per["backward"][i] * positions for i in range(shape.layers))
    head = 2 * shape.hidden * shape.vocab
    head_backward = head * (int(any(grads) or any(runs_backward)) + int(shape.head_trained))
    out = {"forward": first + head * head_positions,
           "recompute": forward_all - first + head * head_recompute,
           "backward": backward + head_backward * head_positions}
    out["total"] = out["forward"] + out["recompute"] + out["backward"]
    return out


def shape_of(model) -> Shape:
    """The linear maps of a (peft-wrapped) decoder model's layers, their LoRA ranks and what is
    trained. Raises ValueError naming a decoder layer's linear map it cannot place."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = decoder_layers(base)
    linears = []
    for i, layer in enumerate(layers):
        for name, mod in layer.named_modules():
            parts = name.split(".")
            if any(x == "base_layer" or x.startswith("lora_") for x in parts):
                continue  # inside a peft wrapper: counted with the wrapper
            leaf = parts[-1]
            inner = getattr(mod, "base_layer", mod)
            if not isinstance(inner, torch.nn.Linear):
                continue
            if leaf not in STAGES:
                raise ValueError(f"decoder layer {i}: linear map '{name}' has no known place "
                                 f"in the layer (known: {', '.join(STAGES)})")
            lora_a = getattr(mod, "lora_A", None)
            rank = sum(int(mod.r[k]) for k in lora_a.keys()) if lora_a is not None else 0
            lora_trained = bool(lora_a is not None and any(
                p.requires_grad for p in lora_a.parameters()))
            linears.append(Linear(i, STAGES[leaf], inner.in_features, inner.out_features, rank,
                                  lora_trained, inner.weight.requires_grad))
    head = base.get_output_embeddings()
    vocab, hidden = head.weight.shape
    return Shape(len(layers), tuple(linears), int(hidden), int(vocab),
                 bool(head.weight.requires_grad))


def decoder_layers(model):
    """The ModuleList of decoder layers (``model.layers`` in Llama-like models)."""
    import torch

    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) and name.endswith("layers"):
            if best is None or len(mod) > len(best):
                best = mod
    if best is None:
        raise ValueError(f"{type(model).__name__}: no decoder layers found (a ModuleList named "
                         f"'layers')")
    return best


class Probe:
    """Hooks that measure what a training run executes: positions through each decoder layer's
    first linear map (every forward call, recomputation included), whether that map's input
    needed a gradient in any call, and positions through the LM head."""

    def __init__(self, model):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.shape = shape_of(model)
        layers = decoder_layers(base)
        self.layer_positions = [0] * len(layers)
        self.input_grad = [False] * len(layers)
        self.head_positions = 0
        self.head_recompute = 0  # counted by jobs whose head recomputes logits (trl_sft)
        self.parameters = sum(p.numel() for p in model.parameters())
        self.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        self.handles = []
        for i, layer in enumerate(layers):
            first = next(m for n, m in layer.named_modules() if n.endswith("q_proj"))
            self.handles.append(first.register_forward_hook(self._layer_hook(i)))
        head = base.get_output_embeddings()
        self.handles.append(head.register_forward_hook(self._head_hook))

    def _layer_hook(self, i: int):
        def hook(module, args, output):
            if module.training:
                x = args[0]
                self.layer_positions[i] += x.shape[:-1].numel()
                self.input_grad[i] = self.input_grad[i] or bool(x.requires_grad)
        return hook

    def _head_hook(self, module, args, output):
        if module.training:
            self.head_positions += args[0].shape[:-1].numel()

    def snapshot(self) -> dict:
        return {"head": self.head_positions, "head_recompute": self.head_recompute,
                "layers": list(self.layer_positions)}

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
