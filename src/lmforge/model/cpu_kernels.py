"""lmforge's CPU training layers, registered with transformers' kernel hub
(``DeviceFacts.cpu_kernels``: training on the CPU without DeepSpeed / FSDP).

transformers (5.x) marks some layers as replaceable kernels: ``RMSNorm`` modules and the
``rotary_pos_emb`` function (``use_kernel_forward_from_hub``, ``use_kernelized_func``). Every
model loaded with ``from_pretrained`` is "kernelized" by the ``kernels`` library, again whenever
it switches between training and inference mode: each marked layer gets the forward the mapping
names for the device and mode, or its own. That also drops any forward set on the instance, so
this is the one place such a layer can be replaced; transformers' own mapping has GPU kernels
only (Liger's RMSNorm, the kernels-community rotary), so on the CPU every marked layer falls back
to its own forward.

This module adds, for the CPU in training mode: ``RMSNorm`` → model/fused_norm.py and
``rotary_pos_emb`` → model/fused_rope.py, each one autograd node with a closed-form backward
where autograd recorded five to six operations. The hub falls back to a training-mode entry in
inference mode too, so the layers are in place in both; they take only calls where gradients flow
in float32, and run the model's own code for the rest (no gradient, so all inference; not float32;
ZeRO-3 weights; a partial rotary).
``USE_HUB_KERNELS=0`` (transformers' switch) turns kernelization and so these layers off.
``register`` also drops the lines kernels logs for every layer it swaps (``_SwapLines``).

The mapping is registered once per process (``register``), before the model is loaded, so the
switch to training mode picks it up; tests use ``mapping()`` with ``kernels.use_kernel_mapping``.
"""

from __future__ import annotations

import functools
import logging
import os


class _SwapLines(logging.Filter):
    """The kernels library logs each layer it swaps ("Using function/layer from repo ...") on the
    root logger at INFO, at every train / eval switch (91 lines for SmolLM2 each time)."""

    def filter(self, record: logging.LogRecord) -> bool:
        source = record.pathname
        return record.levelno >= logging.WARNING or f"{os.sep}kernels{os.sep}" not in source


class _Layer:
    """A kernels repository (``RepositoryProtocol``) that holds one of lmforge's layer classes."""

    def __init__(self, layer):
        self.layer = layer

    def load(self):
        return self.layer

    def __repr__(self) -> str:
        return f"lmforge:{self.layer.__name__}"


@functools.cache
def _layers() -> tuple[_Layer, _Layer]:
    """One repository object each: kernels caches the layers it loads by repository."""
    from lmforge.model.fused_norm import FusedRMSNorm
    from lmforge.model.fused_rope import FusedRotary

    return _Layer(FusedRMSNorm), _Layer(FusedRotary)


def mapping() -> dict:
    """The kernel mapping: lmforge's layers for the CPU in training mode."""
    from kernels import Mode

    norm, rope = _layers()
    return {"RMSNorm": {"cpu": {Mode.TRAINING: norm}},
            "rotary_pos_emb": {"cpu": {Mode.TRAINING: rope}}}


@functools.cache
def register() -> bool:
    """Add ``mapping()`` to the process's kernel mapping (once); False without ``kernels``."""
    try:
        from kernels import register_kernel_mapping
    except ImportError:  # transformers 5 requires it; an older stack has no kernel hub
        return False
    register_kernel_mapping(mapping())
    logging.getLogger().addFilter(_SwapLines())
    return True
