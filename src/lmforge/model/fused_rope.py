"""Rotary position embedding as one autograd node while training on the CPU
(``DeviceFacts.cpu_kernels``, through transformers' kernel hub: model/cpu_kernels.py).

transformers applies RoPE as ``q·cos + rotate_half(q)·sin`` with ``rotate_half(q) = [-q₂, q₁]``:
a negation, a concatenation, two products and a sum per tensor, whose backward also writes a
zero-filled full-size gradient for each half it sliced. Here the forward is ``q·cos`` plus the
rotated half accumulated in place (``addcmul_``), and the backward is its transpose,
``g·cos + [g₂·sin₂, −g₁·sin₁]`` built the same way. Measured alone (query 8 × 9 × 150 × 64 and key
8 × 3 × 150 × 64, float32, 2 threads, AMD EPYC, inputs evicted from the cache, 50 alternating
calls): forward + backward 2.97 ms in transformers' path, 1.54 ms here.
Values within 1e-6 of transformers' (tests/invariants/test_cpu_kernels.py).

Calls this path does not take run the model's own function: no gradient, not float32, a partial
rotary embedding (``cos`` narrower than the head), or another ``unsqueeze_dim`` than 1.
"""

from __future__ import annotations

import torch


def _rotate(x, cos, sin, transpose: bool = False):
    """``x·cos + [-x₂, x₁]·sin`` (x: [B, H, L, D]; cos, sin: [B, 1, L, D]); with ``transpose``
    the transposed rotation, the gradient with respect to x: ``x·cos + [x₂·sin₂, −x₁·sin₁]``."""
    half = x.shape[-1] // 2
    first, second, sign = (sin[..., half:], sin[..., :half], -1) if transpose else \
        (sin[..., :half], sin[..., half:], 1)
    out = x * cos
    out[..., :half].addcmul_(x[..., half:], first, value=-sign)
    out[..., half:].addcmul_(x[..., :half], second, value=sign)
    return out


class _RopeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, cos, sin):
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        ctx.save_for_backward(cos, sin)
        return _rotate(q, cos, sin), _rotate(k, cos, sin)

    @staticmethod
    def backward(ctx, gq, gk):
        cos, sin = ctx.saved_tensors
        gq = None if gq is None or not ctx.needs_input_grad[0] else _rotate(gq, cos, sin, True)
        gk = None if gk is None or not ctx.needs_input_grad[1] else _rotate(gk, cos, sin, True)
        return gq, gk, None, None


def _takes(q, k, cos, sin, unsqueeze_dim) -> bool:
    tensors = (q, k, cos, sin)
    return (isinstance(unsqueeze_dim, int) and unsqueeze_dim == 1
            and all(isinstance(t, torch.Tensor) for t in tensors)
            and torch.is_grad_enabled() and (q.requires_grad or k.requires_grad)
            and not (cos.requires_grad or sin.requires_grad)
            and all(t.dtype == torch.float32 for t in tensors)
            and q.dim() == k.dim() == 4 and cos.dim() == sin.dim() == 3
            and q.shape[-1] == k.shape[-1] == cos.shape[-1] == sin.shape[-1]
            and q.shape[-1] % 2 == 0)


_SAME: dict[type, bool] = {}  # per model function (its hub wrapper class): computes _rotate


def _computes_the_same(own) -> bool:
    """``own(q, k, cos, sin)`` (a model's ``apply_rotary_pos_emb``) equals ``_rotate`` on a probe
    input: the hub's layer name does not promise the same arithmetic."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 2, 3, 8, generator=g), torch.randn(1, 1, 3, 8, generator=g)
    cos, sin = torch.randn(1, 3, 8, generator=g), torch.randn(1, 3, 8, generator=g)
    with torch.no_grad():
        want = own(q, k, cos, sin)
        got = _RopeFn.apply(q, k, cos, sin)
    return all(torch.allclose(w, o, rtol=1e-5, atol=1e-6) for w, o in zip(want, got))


class FusedRotary(torch.nn.Module):
    """The layer transformers' kernel hub puts in place of ``apply_rotary_pos_emb`` (the hub's
    ``rotary_pos_emb``; every model's has this signature). ``type(self).forward`` is the hub's
    wrapper of the model's own function, which calls that function for this private instance."""

    has_backward = True

    def forward(self, q, k, cos, sin, unsqueeze_dim=1):
        own = type(self).forward
        if _takes(q, k, cos, sin, unsqueeze_dim):
            same = _SAME.get(type(self))
            if same is None:
                same = _SAME[type(self)] = _computes_the_same(lambda *a: own(self, *a))
            if same:
                with torch.autocast(q.device.type, enabled=False):
                    return _RopeFn.apply(q, k, cos, sin)
        return own(self, q, k, cos, sin, unsqueeze_dim)
