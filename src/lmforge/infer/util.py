"""Small helpers of the ChatEngine: inference mode for a model that may be training, and stop
strings applied to streamed text."""

from __future__ import annotations

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
