"""Rank helpers that work before and without transformers' state objects.

The launcher (torchrun, accelerate, deepspeed, mpirun via torchrun env) exports RANK, LOCAL_RANK
and WORLD_SIZE. The process group is started early (``init_process_group``, called by every stage's
set-up) so the dataset can be tokenized by local rank 0 first while the other ranks wait, then
load the tokenization cache (``main_first``); accelerate and DeepSpeed reuse that group.
"""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import timedelta

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 1800  # transformers' ddp_timeout default


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def rank() -> int:
    return _env_int("RANK", 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def world_size() -> int:
    return _env_int("WORLD_SIZE", 1)


def launched() -> bool:
    """True inside a multi-process launch (torchrun, accelerate launch, ...)."""
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def backend(use_cpu: bool = False) -> str:
    import torch

    return "nccl" if torch.cuda.is_available() and not use_cpu else "gloo"


def init_process_group(use_cpu: bool = False, timeout_s: float | None = None) -> bool:
    """Start the default process group when launched and not started yet; True when one exists.

    accelerate (PartialState) and DeepSpeed (init_distributed) both reuse an existing group."""
    if not launched():
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    name = backend(use_cpu)
    if name == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(name, timeout=timedelta(seconds=timeout_s or DEFAULT_TIMEOUT_S))
    log.debug("process group started: %s, rank %d of %d", name, rank(), world_size())
    return True


def barrier() -> None:
    if _initialized():
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def main_first(local: bool = True):
    """Run the body on the (node-local) main process first, then on the others: the main process
    tokenizes and fills the cache, the others wait at a barrier and then read the cache. Caches
    are per node, hence local rank by default. Without a process group it just runs the body."""
    first = (local_rank() if local else rank()) == 0
    if not first:
        barrier()
    try:
        yield first
    finally:
        if first:
            barrier()
