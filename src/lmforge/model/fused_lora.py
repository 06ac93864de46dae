"""``adapter.fused``: a LoRA ``nn.Linear`` computed as one autograd node, not four.

peft's LoRA layer computes ``base(x) + lora_B(lora_A(x)) * scaling``: the rank-r product is
written out at the layer's full output width, multiplied by the scale into a second full-width
tensor and added to the base output into a third; the backward pass does the mirror image (a
scaled copy of the output gradient, a full-width input gradient from the LoRA path, and their sum
with the base path's). For SmolLM2's 1536-wide MLP those are memory-bound passes over ~7 MB per
batch each, and on 2 CPU cores they took about 15 % of a LoRA step.

Here the scale is applied to the rank-r tensor and the LoRA product is accumulated into the base
output by the matmul itself (``addmm_``); the backward accumulates the LoRA input gradient into
the base one the same way. Same math, a different rounding order: the tests hold loss and
gradients to the plain peft layer within 1e-5 (float32). The layer *is* peft's ``lora.Linear``
(a subclass, registered through peft's ``LoraConfig._register_custom_module``), so merging,
saving and every case this file does not handle (several active adapters, DoRA and other
variants, a disabled or merged adapter, ``lora_bias``, DeepSpeed ZeRO-3's partitioned weights)
go through peft's own code; a saved adapter is plain peft.
"""

from __future__ import annotations

import torch
from peft.tuners.lora.layer import Linear as LoraLinear


def times_b(g: torch.Tensor, lora_b: torch.Tensor) -> torch.Tensor:
    """``g @ B`` ([N, out] x [out, r]) with B read column-major (a copy of r x out values). BLAS
    runs these r-column products far faster that way: 0.70 → 0.31 ms at SmolLM2's 1536-wide
    MLP and 1,176 rows, 0.26 → 0.12 ms at 576 (float32, 2 threads)."""
    return g @ lora_b.t().contiguous().t()


def grad_b(g: torch.Tensor, xa: torch.Tensor) -> torch.Tensor:
    """B's gradient ``gᵀ (x Aᵀ)`` computed as ``((x Aᵀ)ᵀ g)ᵀ``: the same sums, r output rows
    instead of r output columns, 1.74 → 0.41 ms at 1536 wide, 0.28 → 0.10 ms at 576."""
    return (xa.t() @ g).t()


class _LoraLinearFn(torch.autograd.Function):
    """``y = x Wᵀ + b + s·(x Aᵀ) Bᵀ`` with ``xd`` (dropout of x) feeding the LoRA path;
    ``xd is None`` means no dropout (x itself), then both input gradients are one tensor."""

    @staticmethod
    def forward(ctx, x, xd, weight, bias, lora_a, lora_b, scaling: float):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        xd2 = x2 if xd is None else xd.reshape(-1, shape[-1])
        out = torch.nn.functional.linear(x2, weight, bias)
        xa = (xd2 @ lora_a.t()).mul_(scaling)  # r columns: the scale costs nothing here
        out.addmm_(xa, lora_b.t())
        ctx.save_for_backward(xd2, weight, lora_a, lora_b, xa)
        ctx.scaling, ctx.shape, ctx.split = scaling, shape, xd is not None
        return out.view(*shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        xd2, weight, lora_a, lora_b, xa = ctx.saved_tensors
        needs = ctx.needs_input_grad
        g = grad.reshape(-1, grad.shape[-1])
        gb = times_b(g, lora_b).mul_(ctx.scaling)  # the gradient reaching x Aᵀ, r columns
        gx = gxd = None
        if needs[0]:
            gx = g @ weight
            if ctx.split:
                gxd = (gb @ lora_a).view(ctx.shape) if needs[1] else None
            else:
                gx.addmm_(gb, lora_a)
            gx = gx.view(ctx.shape)
        elif ctx.split and needs[1]:
            gxd = (gb @ lora_a).view(ctx.shape)
        g_bias = g.sum(0) if needs[3] else None
        g_a = gb.t() @ xd2 if needs[4] else None
        g_b = grad_b(g, xa) if needs[5] else None
        return gx, gxd, None, g_bias, g_a, g_b, None


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype


class FusedLoraLinear(LoraLinear):
    """peft's ``lora.Linear`` whose forward runs ``_LoraLinearFn`` when it is a single plain
    LoRA adapter on an ordinary weight; anything else goes to peft's forward unchanged."""

    def fusable_adapter(self) -> str | None:
        """The one active plain LoRA adapter on an ordinary frozen weight, else None."""
        if self.disable_adapters or self.merged:
            return None
        active = self.active_adapters
        if len(active) != 1 or active[0] not in self.lora_A or active[0] in self.lora_variant:
            return None
        name = active[0]
        weight = self.get_base_layer().weight
        if hasattr(weight, "ds_id") or weight.requires_grad or self.lora_B[name].bias is not None:
            return None  # ZeRO-3 gathers weights only for modules it sees called; lora_bias
        return name

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        name = None if args or kwargs else self.fusable_adapter()
        if name is None:
            return super().forward(x, *args, **kwargs)
        base = self.get_base_layer()
        dropout = self.lora_dropout[name]
        dtype = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            xc = x.to(dtype)
            xd = dropout(xc)
            xd = None if xd is xc else xd  # no dropout (or eval mode): one input gradient
            bias = base.bias.to(dtype) if base.bias is not None else None
            out = _LoraLinearFn.apply(xc, xd, base.weight.to(dtype), bias,
                                      self.lora_A[name].weight.to(dtype),
                                      self.lora_B[name].weight.to(dtype), self.scaling[name])
        return out


def fused_dispatch(target, adapter_name: str, config, parameter_name=None, **kwargs):
    """peft's custom-module hook: a ``FusedLoraLinear`` for an exact ``torch.nn.Linear``
    (quantized and other Linear subclasses are left to peft's own dispatchers: None)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
    if parameter_name is not None or type(base) is not torch.nn.Linear:
        return None
    return FusedLoraLinear(target, adapter_name, config=config, **kwargs)


def register(config):
    """Route ``config``'s plain ``nn.Linear`` targets to ``FusedLoraLinear``; returns it."""
    config._register_custom_module({torch.nn.Linear: fused_dispatch})
    return config
