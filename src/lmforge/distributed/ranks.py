"""Rank helpers that work before and without transformers' state objects.

The launcher (torchrun, accelerate, deepspeed, mpirun via torchrun env) exports RANK, LOCAL_RANK
and WORLD_SIZE. The process group is started early (``init_process_group``, called by every stage's
set-up) so the dataset can be tokenized by local rank 0 first while the other ranks wait, then
load the tokenization cache (``main_first``); accelerate and DeepSpeed reuse that group. A
single-process DeepSpeed run gets a 1-process launcher environment (``single_process_rendezvous``).
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
    from lmforge.training.device import gpu_present

    return "nccl" if gpu_present() and not use_cpu else "gloo"


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


RENDEZVOUS_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                  "MASTER_PORT")


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def single_process_rendezvous(wanted: bool):
    """The launcher environment of a 1-process run, for the duration of the body.

    DeepSpeed needs a process group even for one process; without a launcher's RANK /
    WORLD_SIZE / MASTER_ADDR / MASTER_PORT / LOCAL_RANK it falls back to MPI discovery and dies
    with ``No module named 'mpi4py'``. When ``wanted`` (train.deepspeed set) and no launcher set
    them, they are set to a rendezvous of one process on a free loopback port (what
    ``deepspeed --num_gpus 1`` or ``torchrun --nproc 1`` would export), and restored on exit, so
    that child processes and later runs in this process (sweeps, tests) see no launcher. The
    1-process group DeepSpeed started stays: DeepSpeed caches its groups for the next run."""
    if not wanted or any(name in os.environ for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        yield
        return
    # accelerate leaves ACCELERATE_USE_DEEPSPEED=true behind: the next run would be DeepSpeed too
    saved = {name: os.environ.get(name) for name in (*RENDEZVOUS_ENV, "ACCELERATE_USE_DEEPSPEED")}
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if not saved["MASTER_PORT"]:
        os.environ["MASTER_PORT"] = str(free_port())
    log.debug("single-process rendezvous on %s:%s", os.environ["MASTER_ADDR"],
              os.environ["MASTER_PORT"])
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
