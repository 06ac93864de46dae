"""Process settings for a CPU process, applied when it loads a model (``load_model`` in
model/loader.py: training and inference alike). Neither changes what is computed;
docs/performance.md has the measurements.

- **Grouped-query attention inside SDPA.** transformers repeats the key/value heads of a GQA model
  (SmolLM2: 3 → 9) into new tensors before calling ``scaled_dot_product_attention`` whenever an
  attention mask is given (always, for padded batches), because CUDA's fast kernels refuse a mask
  with ``enable_gqa``. torch's CPU kernels accept both, so on the CPU transformers' own switch
  ``TRANSFORMERS_SDPA_FORCE_GQA=1`` is set (unless the user set it): the repeated copies are not
  made, nor kept for the backward pass (SmolLM2 LoRA: ~180 MB less peak RSS), same loss and
  gradients (tests/invariants/test_cpu_tuning.py).
- **glibc malloc keeps freed memory.** With its default dynamic thresholds, glibc returns freed
  heap tops to the kernel and maps large blocks afresh, so a training step re-faults memory it
  freed one step earlier: up to 300,000 page faults and 0.3-0.9 s of kernel time in a 3 s
  SmolLM2 step on this project's VMs. ``mallopt`` fixes the mmap threshold at glibc's maximum
  (32 MiB: smaller blocks come from the heap) and stops trimming, so freed memory is reused
  without faults. Peak RSS is unchanged (the heap only keeps what the process used at its
  peak). No effect off glibc.

``LMFORGE_CPU_DEFAULTS=1`` leaves both at the libraries' defaults.

``release_memory`` hands the heap's freed pages back (``malloc_trim``) where a phase's memory is
done with: when training ends (training/trainer.py: saving, the loss plot and an export then do
not stack on top of the training's retained heap), between the quickstart's phases, and when the
server's generation thread falls idle (serve/scheduler.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

GQA_VARIABLE = "TRANSFORMERS_SDPA_FORCE_GQA"
OPT_OUT = "LMFORGE_CPU_DEFAULTS"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's upper limit on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: "never", in practice


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other libcs: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: setting either value turns glibc's dynamic thresholds off, and a
    # fixed trim threshold with the default 128 KiB mmap threshold would map every large tensor
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def grouped_query_sdpa() -> bool:
    """Let transformers pass ``enable_gqa`` to SDPA with a mask (CPU kernels support it)."""
    import torch

    if tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 5):
        return False  # enable_gqa arrived in torch 2.5
    os.environ.setdefault(GQA_VARIABLE, "1")
    return os.environ[GQA_VARIABLE] == "1"


def apply(on_cpu: bool) -> dict[str, bool]:
    """Both settings for a CPU run (nothing on a GPU or with LMFORGE_CPU_DEFAULTS=1)."""
    if not on_cpu or os.environ.get(OPT_OUT) == "1":
        return {"keep_freed_memory": False, "grouped_query_sdpa": False}
    return {"keep_freed_memory": keep_freed_memory(), "grouped_query_sdpa": grouped_query_sdpa()}


def release_memory() -> bool:
    """Return freed heap pages to the system (glibc's ``malloc_trim``); False where unavailable
    (a few ms)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc.malloc_trim if libc is not None else None
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


_TRIM = _malloc_trim()
