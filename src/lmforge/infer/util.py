"""Small helpers of the ChatEngine: inference mode for a model that may be training, and stop
strings applied to streamed text, and cancelling a generation running in another thread."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


def until_stop(pieces, stops: list[str]) -> Iterator[str]:
    """Pass text through until a stop string, holding back a tail that may begin one."""
    pending = ""
    for piece in pieces:
        pending += piece
        hits = [pending.find(s) for s in stops if s in pending]
        if hits:
            if min(hits):
                yield pending[:min(hits)]
            return
        hold = max((k for s in stops for k in range(1, len(s)) if pending.endswith(s[:k])),
                   default=0)
        if len(pending) > hold:
            yield pending[:len(pending) - hold]
            pending = pending[len(pending) - hold:]
    if pending:
        yield pending


class eval_mode:
    """Put a model in eval mode for inference and restore training mode afterwards."""

    def __init__(self, model):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        if self.was_training:
            self.model.train()


class Cancel:
    """A flag that ends a running ``generate`` at its next step (a closed stream)."""

    def __init__(self):
        import threading

        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()

    def criteria(self):
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        event = self.event

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool,
                                  device=input_ids.device)

        return StoppingCriteriaList([_Stop()])


@contextmanager
def seeded(seed: int | None, device=None):
    """Seed torch inside the block only (the global RNG state is restored afterwards)."""
    if seed is None:
        yield
        return
    import torch

    devices = [device] if device is not None and getattr(device, "type", "") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
