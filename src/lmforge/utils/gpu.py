"""The one place lmforge asks torch whether a CUDA GPU is usable (a leaf module, so the config
layer's checks can ask too; the device facts built on it live in training/device.py)."""

from __future__ import annotations


def gpu_present() -> bool:
    """A CUDA GPU is usable by this process."""
    import torch

    return torch.cuda.is_available()
