"""Scoring continuations with a ChatEngine's model (``ChatEngine.loglikelihood``): the
model's own log-probabilities (temperature 1, no top-p/k) of given token ids."""

from __future__ import annotations


def score_batch(engine, pairs) -> list[list[float]]:
    """Per-token log-probabilities of each (prompt ids, continuation ids) pair: one left-padded
    forward pass, the LM head only over the continuations' positions."""
    import torch

    rows = [list(p) + list(c) for p, c in pairs]
    keep = max(len(c) for _, c in pairs) + 1
    input_ids, mask = engine.left_pad(rows)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad(), engine.autocast():
        try:
            logits = engine.model(input_ids=input_ids, attention_mask=mask,
                                  position_ids=positions, logits_to_keep=keep).logits
        except TypeError:  # a model without logits_to_keep
            logits = engine.model(input_ids=input_ids, attention_mask=mask,
                                  position_ids=positions).logits
    logp = torch.log_softmax(logits[:, -keep:].float(), dim=-1)
    out = []
    for i, (_, cont) in enumerate(pairs):
        n = len(cont)
        if n == 0:
            out.append([])
            continue
        # logits at position t predict token t+1: the continuation's tokens are the last n
        steps = logp[i, keep - 1 - n:keep - 1]
        target = torch.tensor(cont, device=steps.device).unsqueeze(-1)
        out.append(steps.gather(-1, target).squeeze(-1).tolist())
    return out
