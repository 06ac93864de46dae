"""``eval.mode: choices``: constrained scoring of a label set instead of free generation.

For each input, every allowed answer (``eval.choices``, default: the distinct gold answers of the
eval set) is scored by the model's log-likelihood of that answer as the whole assistant turn,
end-of-turn token included, after the prompt rendered exactly as for generation
(``engine.render``); the highest total wins (ties: the first in the list). The answer is always
one of the choices, so nothing is unparseable, and label metrics are computed as for generation.

Cost: one forward pass over each batch of prompts (keeping the KV cache), then one pass over the
answers of all choices of that batch at once, each attending to its prompt's cached keys
(``batch_repeat_interleave`` of the cache): the prompt is computed once, not once per choice. Where
the prompt's tokens would depend on the choice (a tokenizer merging across the boundary) or the
model cannot share a cache (prompt-learning adapters), the pairs are scored one by one through
``engine.loglikelihood`` instead: the same numbers (tests/integration/test_choices.py compares).
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
    from lmforge.infer.util import eval_mode

    out: list[list[float] | None] = [None] * len(rows)
    shared = [i for i, pairs in enumerate(rows)
              if pairs and all(p == pairs[0][0] for p, _ in pairs) and pairs[0][0]]
    if not _shareable(engine.model):
        shared = []
    order = sorted(shared, key=lambda i: -len(rows[i][0][0]))
    with engine.lock, eval_mode(engine.model):
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
    n = len(rows[0])
    answers = [a for pairs in rows for _, a in pairs]
    steps = max(len(a) for a in answers)
    with torch.no_grad(), engine.autocast():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # predicts answer token 0
        rest = None
        if steps > 1:
            # the output names it 'cache' in recent transformers 5 releases (the old name
            # 'past_key_values' is deprecated there), 'past_key_values' before: pass it back
            # under the name it came with
            name = "cache" if "cache" in out else "past_key_values"
            cache = out[name]
            cache.batch_repeat_interleave(n)
            a_ids = torch.full((len(answers), steps), pad, dtype=torch.long)
            a_mask = torch.zeros((len(answers), steps), dtype=torch.long)
            for k, a in enumerate(answers):
                a_ids[k, :len(a)] = torch.tensor(a)
                a_mask[k, :len(a)] = 1
            a_ids, a_mask = a_ids.to(device), a_mask.to(device)
            full_mask = torch.cat([mask.repeat_interleave(n, 0), a_mask], dim=1)
            a_pos = positions[:, -1:].repeat_interleave(n, 0) + 1 + torch.arange(
                steps, device=device)
            logits = model(input_ids=a_ids, attention_mask=full_mask, position_ids=a_pos,
                           use_cache=True, **{name: cache}).logits
            rest = torch.log_softmax(logits.float(), dim=-1)
    scores = []
    for r in range(len(rows)):
        row = []
        for c in range(n):
            a = answers[r * n + c]
            total = first[r, a[0]].item() if a else 0.0
            if len(a) > 1:
                target = torch.tensor(a[1:], device=rest.device).unsqueeze(-1)
                total += rest[r * n + c, :len(a) - 1].gather(-1, target).sum().item()
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
