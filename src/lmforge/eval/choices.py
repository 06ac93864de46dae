"""``eval.mode: choices``: constrained scoring of a label set instead of free generation.

For each input, every allowed answer (``eval.choices``, default: the distinct gold answers of the
eval set) is scored by the model's log-likelihood of that answer as the whole assistant turn,
end-of-turn token included, after the prompt rendered exactly as for generation
(``engine.render``); the highest total wins (ties: the first in the list). The answer is always
one of the choices, so nothing is unparseable, and label metrics are computed as for generation.

Cost: one forward pass over each batch of prompts (keeping the KV cache), then one pass over the
answers of all choices of that batch at once: the prompt is computed once, not once per choice.
With sdpa or eager attention each row holds its prompt's answers one after another and a 4-D
mask lets each answer see only its prompt and itself (``_tree``), so the cache is not copied:
with the repeated cache (``batch_repeat_interleave``, kept for other attention kinds) the
quickstart's label scoring peaked at 2.05 GB RSS. Under bf16 autocast the LM head's logits are
recomputed in float32 (``infer.util.float32_head``), which removes about half of bf16's error in
a label's score. Where the prompt's tokens would depend on the choice (a tokenizer merging across
the boundary) or the model cannot share a cache (prompt-learning adapters), the pairs are scored
one by one through ``engine.loglikelihood`` instead: the same numbers
(tests/integration/test_choices.py compares).
"""

from __future__ import annotations

from typing import Callable, Sequence

Pairs = list[tuple[list[int], list[int]]]  # (prompt ids, answer ids) per choice


def choice_set(samples: Sequence, pattern: str | None, normalize: bool = True,
               given: Sequence[str] | None = None) -> list[str]:
    """The allowed answers: ``given``, or the distinct gold answers (sorted; labels that differ
    only by case/punctuation count once when ``normalize``)."""
    from lmforge.eval.answers import reference_answer
    from lmforge.eval.metrics import to_label

    if given:
        return list(given)
    seen: dict[str, str] = {}
    for s in samples:
        gold = reference_answer(s.reference, pattern)
        seen.setdefault(to_label(gold, normalize), gold)
    return sorted(seen.values())


def split_ids(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of ``prompt + answer`` (one tokenization) split where the answer starts."""
    enc = tokenizer(prompt + answer, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    cut = next((k for k, (start, end) in enumerate(offsets) if start >= len(prompt)
                and end > start), len(ids))
    return list(ids[:cut]), list(ids[cut:])


def pairs_for(engine, messages: list[dict], choices: Sequence[str], where: str = "") -> Pairs:
    """Token ids of prompt + each answer, split where the answer starts (one tokenization)."""
    from lmforge.data.prompts import render_completion

    prompt = engine.render(messages)
    return [split_ids(engine.tokenizer, prompt, render_completion(
        messages, c, engine.template, engine.tokenizer, prompt, where)) for c in choices]


def _shareable(model) -> bool:
    config = getattr(model, "active_peft_config", None)
    return not getattr(config, "is_prompt_learning", False)


def score(engine, rows: Sequence[Pairs],
          progress: Callable[[int], None] | None = None) -> list[list[float]]:
    """Total log-probability of each answer of each row (rows: ``pairs_for`` results)."""
    from lmforge.infer.util import eval_mode, float32_head

    out: list[list[float] | None] = [None] * len(rows)
    shared = [i for i, pairs in enumerate(rows)
              if pairs and all(p == pairs[0][0] for p, _ in pairs) and pairs[0][0]]
    if not _shareable(engine.model):
        shared = []
    order = sorted(shared, key=lambda i: -len(rows[i][0][0]))
    with engine.lock, eval_mode(engine.model), float32_head(engine.model):
        for start in range(0, len(order), max(1, engine.batch_size)):
            chunk = order[start:start + max(1, engine.batch_size)]
            for i, scores in zip(chunk, _cached(engine, [rows[i] for i in chunk])):
                out[i] = scores
            if progress is not None:
                progress(len(chunk))
        for i, pairs in enumerate(rows):
            if out[i] is None:
                out[i] = [sum(x) for x in engine.loglikelihood(pairs)]
                if progress is not None:
                    progress(1)
    return out  # type: ignore[return-value]


def _cached(engine, rows: list[Pairs]) -> list[list[float]]:
    """One forward over the prompts (cache kept), one over every row's answers together."""
    import torch

    model, pad, device = engine.model, engine.pad_id, engine.device
    prompts = [pairs[0][0] for pairs in rows]
    width = max(len(p) for p in prompts)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p)
        mask[r, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad(), engine.autocast():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts answer token 0
        if max(len(a) for pairs in rows for _, a in pairs) < 2:
            return _totals(rows, first, None, None)
        # the output names it 'cache' in recent transformers 5 releases (the old name
        # 'past_key_values' is deprecated there), 'past_key_values' before: pass it back under
        # the name it came with
        name = "cache" if "cache" in out else "past_key_values"
        cache, last, kind = {name: out[name]}, positions[:, -1], mask_kind(model)
        logits, place = (_tree(model, rows, cache, mask, last, pad, kind) if kind
                         else _repeated(model, rows, cache, mask, last, pad))
        return _totals(rows, first, torch.log_softmax(logits.float(), dim=-1), place)


def mask_kind(model) -> str | None:
    """"sdpa" or "eager": the model's attention takes a custom 4-D mask (``_tree``); else None
    (flash-attention and other kernels: ``_repeated``)."""
    from lmforge.model.loader import attention_kind

    kind = attention_kind(model)
    return kind if kind in ("sdpa", "eager") else None


def _tree(model, rows: list[Pairs], cache: dict, prompt_mask, last_pos, pad: int, kind: str):
    """Every row's answers (but their last tokens, whose logits predict nothing) one after
    another in one row, each seeing its prompt's cached keys and its own earlier tokens only, at
    the positions it would have right after the prompt. Returns (logits, {(row, choice): (logits
    row, first position)})."""
    import torch

    device, width = prompt_mask.device, prompt_mask.shape[1]
    cut = [[a[:-1] for _, a in pairs] for pairs in rows]
    length = max(1, max(sum(len(t) for t in row) for row in cut))
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    pos = torch.zeros((len(rows), length), dtype=torch.long)
    seen = torch.zeros((len(rows), length, width + length), dtype=torch.bool)
    seen[:, :, :width] = prompt_mask.bool().cpu()[:, None, :]  # padding queries: the prompt only
    place = {}
    for r, row in enumerate(cut):
        at = 0
        for c, tokens in enumerate(row):
            k = len(tokens)
            ids[r, at:at + k] = torch.tensor(tokens, dtype=torch.long)
            pos[r, at:at + k] = int(last_pos[r]) + 1 + torch.arange(k)
            seen[r, at:at + k, width + at:width + at + k] = torch.ones(k, k).tril().bool()
            place[r, c] = (r, at)
            at += k
    mask = seen[:, None].to(device)
    if kind == "eager":  # eager attention adds the mask to its scores
        mask = torch.zeros(mask.shape, device=device).masked_fill(
            ~mask, torch.finfo(torch.float32).min)
    logits = model(input_ids=ids.to(device), attention_mask=mask, position_ids=pos.to(device),
                   use_cache=True, **cache).logits
    return logits, place


def _repeated(model, rows: list[Pairs], cache: dict, prompt_mask, last_pos, pad: int):
    """Like ``_tree`` for attention that takes no 4-D mask: the cache repeated once per choice
    (``batch_repeat_interleave``), one row per (prompt, choice)."""
    import torch

    device, n = prompt_mask.device, len(rows[0])
    answers = [a for pairs in rows for _, a in pairs]
    steps = max(len(a) for a in answers)
    next(iter(cache.values())).batch_repeat_interleave(n)
    a_ids = torch.full((len(answers), steps), pad, dtype=torch.long)
    a_mask = torch.zeros((len(answers), steps), dtype=torch.long)
    for k, a in enumerate(answers):
        a_ids[k, :len(a)] = torch.tensor(a)
        a_mask[k, :len(a)] = 1
    a_ids, a_mask = a_ids.to(device), a_mask.to(device)
    full_mask = torch.cat([prompt_mask.repeat_interleave(n, 0), a_mask], dim=1)
    a_pos = last_pos[:, None].repeat_interleave(n, 0) + 1 + torch.arange(steps, device=device)
    logits = model(input_ids=a_ids, attention_mask=full_mask, position_ids=a_pos,
                   use_cache=True, **cache).logits
    return logits, {(r, c): (r * n + c, 0) for r in range(len(rows)) for c in range(n)}


def _totals(rows: list[Pairs], first, logp, place) -> list[list[float]]:
    """Each answer's summed log-probability: its first token from ``first`` (the prompt's last
    position), the others from ``logp`` at ``place[row, choice]`` = (logits row, start)."""
    import torch

    scores = []
    for r, pairs in enumerate(rows):
        row = []
        for c, (_, a) in enumerate(pairs):
            total = first[r, a[0]].item() if a else 0.0
            if len(a) > 1:
                at, start = place[r, c]
                target = torch.tensor(a[1:], device=logp.device).unsqueeze(-1)
                total += logp[at, start:start + len(a) - 1].gather(-1, target).sum().item()
            row.append(total)
        scores.append(row)
    return scores


def choose(engine, samples: Sequence, choices: Sequence[str],
           progress: Callable[[int], None] | None = None) -> list[tuple[str, dict[str, float]]]:
    """(the best choice, {choice: total log-probability}) per sample (``runner.Sample``)."""
    rows = [pairs_for(engine, s.messages, choices, getattr(s, "where", "")) for s in samples]
    out = []
    for scores in score(engine, rows, progress):
        best = max(range(len(choices)), key=lambda k: (scores[k], -k))
        out.append((choices[best], dict(zip(choices, scores))))
    return out
