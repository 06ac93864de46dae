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


@contextmanager
def float32_head(model):
    """Within it, the LM head's logits are recomputed in float32 when autocast is on and the head
    keeps float32 weights (the CPU bf16 engine: the tied head). Why: bf16 logits carry ~0.4 %
    relative error (about 0.1 nat at a logit of 20), enough to flip answers whose scores are
    close. Measured on the quickstart's tuned model, 150 articles x 5 labels: summed label
    log-probs differ from float32 inference by 0.066 nat on average (0.27 at most) with the bf16
    head, 0.031 (0.17) with it in float32, at about 1 % of the scoring time."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is None or weight.dtype != torch.float32:
        yield
        return

    def recompute(module, args, output):
        x = args[0]
        if not torch.is_autocast_enabled(x.device.type):
            return output
        with torch.autocast(x.device.type, enabled=False):
            bias = module.bias.float() if getattr(module, "bias", None) is not None else None
            return torch.nn.functional.linear(x.float(), module.weight, bias)

    # prepend: hooks registered by others (tests forcing an answer) see the float32 logits
    handle = head.register_forward_hook(recompute, prepend=True)
    try:
        yield
    finally:
        handle.remove()

