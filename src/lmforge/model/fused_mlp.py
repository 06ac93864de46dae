"""A gated MLP whose three projections carry fused LoRA layers, trained as one autograd node
that keeps 2 of its 4 wide activations (``adapter.fused``, with model/fused_lora.py).

A Llama-style MLP computes ``down(silu(gate(x)) * up(x))``. Autograd keeps four tensors of the
intermediate width per token for the backward pass: ``gate(x)`` (for SiLU), ``silu(gate(x))`` and
``up(x)`` (for the product) and the product itself (the input of down's LoRA). On SmolLM2 LoRA
(1536 wide, 30 layers) that is ~470 MB of a 8 × 159-token batch. Here only ``gate(x)`` and
``up(x)`` are kept; the backward recomputes the SiLU and the product from them (two elementwise
passes, fewer than the memory traffic they save: the step is not slower, measured). Same math in
the same order: loss and gradients within 1e-5 of the per-layer path
(tests/invariants/test_fused_mlp.py).

Which modules: every module with ``gate_proj``, ``up_proj``, ``down_proj`` that are
``FusedLoraLinear`` and an ``act_fn``, whose own forward gives what this one computes on a probe
input (checked when the model is prepared, so a model that computes its MLP differently keeps its
own forward). transformers offers no public way to replace an MLP's forward (its kernel hub covers
RMSNorm and RoPE, not the MLP), so the module's ``forward`` attribute is set on the instance; a
call this path does not handle (no gradient, LoRA dropout, several adapters, a bias, ZeRO-3's
partitioned weights) runs the module's own forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmforge.model.fused_lora import FusedLoraLinear, _compute_dtype, grad_b, times_b

PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def _lora_linear(x, w, a, b, s):
    out = x @ w.t()
    xa = (x @ a.t()).mul_(s)
    return out.addmm_(xa, b.t()), xa


class _SwiGluLoraFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, wg, ag, bg, wu, au, bu, wd, ad, bd, scales):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        g, xag = _lora_linear(x2, wg, ag, bg, scales[0])
        u, xau = _lora_linear(x2, wu, au, bu, scales[1])
        y, xad = _lora_linear(F.silu(g).mul_(u), wd, ad, bd, scales[2])
        ctx.save_for_backward(x2, g, u, xag, xau, xad, wg, ag, bg, wu, au, bu, wd, ad, bd)
        ctx.scales, ctx.shape = scales, shape
        return y.view(*shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x2, g, u, xag, xau, xad, wg, ag, bg, wu, au, bu, wd, ad, bd = ctx.saved_tensors
        sg, su, sd = ctx.scales
        gy = grad.reshape(-1, grad.shape[-1])
        s = F.silu(g)
        gbd = times_b(gy, bd).mul_(sd)  # the gradient reaching down's p·Aᵀ
        g_ad, g_bd = gbd.t() @ (s * u), grad_b(gy, xad)  # the product recomputed, used, freed
        gp = (gy @ wd).addmm_(gbd, ad)  # the gradient of the product
        gu = gp * s
        gg = torch.ops.aten.silu_backward(gp.mul_(u), g)
        del s, gp
        gbg, gbu = times_b(gg, bg).mul_(sg), times_b(gu, bu).mul_(su)
        gx = None
        if ctx.needs_input_grad[0]:
            gx = (gg @ wg).addmm_(gu, wu).addmm_(gbg, ag).addmm_(gbu, au).view(ctx.shape)
        return (gx, None, gbg.t() @ x2, grad_b(gg, xag), None, gbu.t() @ x2, grad_b(gu, xau),
                None, g_ad, g_bd, None)


def _adapter(layer: FusedLoraLinear) -> str | None:
    """The adapter of a layer this path can take (no dropout, no bias), else None."""
    name = layer.fusable_adapter()
    if name is None or not isinstance(layer.lora_dropout[name], torch.nn.Identity):
        return None
    return None if layer.get_base_layer().bias is not None else name


def _parts(layer: FusedLoraLinear, dtype):
    """(weight, A, B, scale) of a layer this path can take, in ``dtype``, else None."""
    name = _adapter(layer)
    if name is None:
        return None
    return (layer.get_base_layer().weight.to(dtype), layer.lora_A[name].weight.to(dtype),
            layer.lora_B[name].weight.to(dtype), layer.scaling[name])


def fused_forward(module, x):
    """The module's forward through ``_SwiGluLoraFn`` when it can, else its own."""
    if torch.is_grad_enabled():
        dtype = _compute_dtype(x)
        parts = [_parts(getattr(module, p), dtype) for p in PROJECTIONS]
        if all(p is not None for p in parts):
            (wg, ag, bg, sg), (wu, au, bu, su), (wd, ad, bd, sd) = parts
            with torch.autocast(x.device.type, enabled=False):
                return _SwiGluLoraFn.apply(x.to(dtype), wg, ag, bg, wu, au, bu, wd, ad, bd,
                                           (sg, su, sd))
    return type(module).forward(module, x)


def _computes_the_same(module) -> bool:
    """The module's own forward equals ``down(silu(gate(x)) * up(x))`` on a probe input."""
    gate = module.gate_proj.get_base_layer()
    probe = torch.randn(2, 3, gate.in_features, generator=torch.Generator().manual_seed(0),
                        dtype=gate.weight.dtype).to(gate.weight.device)
    with torch.no_grad():
        own = type(module).forward(module, probe)
        with torch.enable_grad():
            ours = fused_forward(module, probe)
    tol = 1e-4 if probe.dtype == torch.float32 else 2e-2  # half precision: rounding only
    return own.shape == ours.shape and torch.allclose(own, ours.detach(), rtol=tol, atol=tol / 10)


def fuse_mlps(model) -> int:
    """Route every gated MLP of fused LoRA layers through ``fused_forward``; the count."""
    count = 0
    for module in model.modules():
        if not all(isinstance(getattr(module, p, None), FusedLoraLinear) for p in PROJECTIONS):
            continue
        if not callable(getattr(module, "act_fn", None)) or "forward" in vars(module):
            continue
        if all(_adapter(getattr(module, p)) for p in PROJECTIONS) and _computes_the_same(module):
            module.forward = fused_forward.__get__(module)
            count += 1
    return count
