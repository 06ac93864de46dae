"""Data-parallel PPO over the processes of a launch (torchrun, ``lmforge train --nproc N``).

Every process samples, scores and trains on its own share of each iteration's prompts (the same
number of prompts per process, ``train.batch_size``, as a Trainer's per-device batch); after each
mini-batch's backward pass the gradients are averaged over the processes, so every process takes
the same optimizer step and holds the same weights. Statistics are combined exactly over the
examples (or tokens) they average: each process contributes ``(weight, values)`` pairs and every
value becomes ``sum(weight * value) / sum(weight)`` over all processes; the reward's mean and
standard deviation are computed from every process's rewards. Whitening (``ppo.whiten_rewards``,
``ppo.whiten_advantages``) stays per process, over its own rollout. Without a process group every
function here is the identity.
"""

from __future__ import annotations

import torch

from lmforge.distributed import ranks


def world_size() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    ranks.barrier()


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over the processes (one all-reduce per dtype and
    device; a parameter without a gradient on this process counts as a zero gradient)."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    groups: dict[tuple, list[torch.nn.Parameter]] = {}
    for p in params:
        groups.setdefault((p.dtype, p.device), []).append(p)
    for group in groups.values():
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                          for p in group])
        dist.all_reduce(flat)
        flat /= world_size()
        offset = 0
        for p in group:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n


def combine(parts: list[tuple[float, dict]]) -> dict:
    """Weighted means over every process's ``(weight, {name: value})`` pairs; a name missing
    from a pair does not count in that name's mean."""
    if world_size() > 1:
        import torch.distributed as dist

        gathered: list = [None] * world_size()
        dist.all_gather_object(gathered, parts)
        parts = [pair for ranked in gathered for pair in ranked]
    keys = sorted({k for _, values in parts for k in values})
    out = {}
    for k in keys:
        pairs = [(w, values[k]) for w, values in parts if k in values]
        if len(pairs) == 1:  # nothing to combine: the value as computed
            out[k] = pairs[0][1]
        elif sum(w for w, _ in pairs) > 0:
            out[k] = sum(w * v for w, v in pairs) / sum(w for w, _ in pairs)
    return out


def summarize(parts: list[tuple[float, dict]], rewards: list[float], prefix: str = "") -> dict:
    """``combine(parts)`` plus the mean and standard deviation of every process's raw rewards
    (computed over all of them, not averaged from per-batch values), names prefixed."""
    stats = combine(parts)
    everyone = torch.tensor(gather(rewards), dtype=torch.float32)
    if len(everyone):
        stats["reward_mean"] = everyone.mean().item()
        stats["reward_std"] = everyone.std().item() if len(everyone) > 1 else 0.0
    return {f"{prefix}{k}": v for k, v in stats.items()}


def gather(values: list[float]) -> list[float]:
    """Every process's values, in rank order."""
    if world_size() == 1:
        return list(values)
    import torch.distributed as dist

    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, list(values))
    return [v for ranked in gathered for v in ranked]
