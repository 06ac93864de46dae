"""Preference records -> datasets for each stage, plus pre-flight statistics and checks.

DPO/ORPO/KTO get rendered strings (trl tokenizes prompt and prompt+answer itself and splits them
at the common prefix, so BPE merges across the seam cannot shift the boundary). The reward model
gets token ids from ONE tokenization of prompt + answer. Over-long examples are fitted to
data.max_length with data.truncation's SFT meaning (data/preference_fit.py).
"""

from __future__ import annotations

import logging

from lmforge.data.preference import Pair, Unpaired
from lmforge.data.prompts import strip_auto_bos
from lmforge.errors import DataError

log = logging.getLogger(__name__)


def _lengths(texts: list[str], tokenizer) -> list[int]:
    if not texts:
        return []
    return [len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _summary(name: str, values: list[int]) -> dict:
    if not values:
        return {}
    return {f"{name}_tokens_mean": sum(values) / len(values), f"{name}_tokens_max": max(values)}


def identical_where(pairs: list, limit: int = 5) -> str:
    """file:line of the pairs whose answers are the same (the first ``limit``)."""
    where = [p.where or "?" for p in pairs if p.chosen == p.rejected]
    more = f" and {len(where) - limit} more" if len(where) > limit else ""
    return ", ".join(where[:limit]) + more


def pair_stats(pairs: list[Pair], tokenizer, max_length: int) -> dict:
    """Counts and lengths; raises when the data cannot teach anything."""
    prompt = _lengths([p.prompt for p in pairs], tokenizer)
    chosen = _lengths([p.chosen for p in pairs], tokenizer)
    rejected = _lengths([p.rejected for p in pairs], tokenizer)
    identical = sum(p.chosen == p.rejected for p in pairs)
    too_long = sum(p + max(c, r) > max_length for p, c, r in zip(prompt, chosen, rejected))
    eos = tokenizer.eos_token or ""
    no_eos = sum(eos not in p.chosen for p in pairs) if eos else 0
    stats = {"examples": len(pairs), "identical_pairs": identical, "over_max_length": too_long,
             "chosen_without_eos": no_eos}
    for name, values in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
        stats.update(_summary(name, values))
    if pairs and identical == len(pairs):
        raise DataError("every pair has chosen == rejected: there is no preference to learn",
                        pairs[0].where)
    if identical:
        log.warning("%d pairs have chosen == rejected (no signal): %s", identical,
                    identical_where(pairs))
    if too_long:
        log.warning("%d pairs are longer than data.max_length=%d", too_long, max_length)
    if no_eos:
        log.warning("%d chosen answers have no end-of-turn token %r: the model may not learn to "
                    "stop (check model.template)", no_eos, eos)
    return stats


def unpaired_stats(rows: list[Unpaired], tokenizer, max_length: int) -> dict:
    prompt = _lengths([r.prompt for r in rows], tokenizer)
    completion = _lengths([r.completion for r in rows], tokenizer)
    good = sum(r.label for r in rows)
    stats = {"examples": len(rows), "desirable": good, "undesirable": len(rows) - good,
             "over_max_length": sum(p + c > max_length for p, c in zip(prompt, completion))}
    stats.update(_summary("prompt", prompt))
    stats.update(_summary("completion", completion))
    if rows and good in (0, len(rows)):
        log.warning("KTO data has only %s examples; KTO learns best from both kinds",
                    "desirable" if good else "undesirable")
    return stats


def pairs_dataset(pairs: list[Pair], tokenizer):
    """prompt / chosen / rejected strings for trl's DPO and ORPO trainers."""
    import datasets

    return datasets.Dataset.from_dict({
        "prompt": [strip_auto_bos(p.prompt, tokenizer) for p in pairs],
        "chosen": [p.chosen for p in pairs], "rejected": [p.rejected for p in pairs]})


def unpaired_dataset(rows: list[Unpaired], tokenizer):
    """prompt / completion / label for trl's KTO trainer."""
    import datasets

    return datasets.Dataset.from_dict({
        "prompt": [strip_auto_bos(r.prompt, tokenizer) for r in rows],
        "completion": [r.completion for r in rows], "label": [r.label for r in rows]})


def encode_answer(prompt: str, answer: str, tokenizer, max_length: int,
                  truncation: str) -> list[int] | None:
    """Ids of prompt + answer from one tokenization, fitted to max_length with data.truncation's
    meaning (data/preference_fit.py), or None when dropped."""
    from lmforge.data.encode import Settings
    from lmforge.data.preference_fit import fit

    got = fit(prompt, [answer], tokenizer, Settings(max_length=max_length, truncation=truncation))
    return None if got is None else got[2][0]


def rm_dataset(pairs: list[Pair], tokenizer, max_length: int, truncation: str,
               default_margin: float | None):
    """chosen_ids / rejected_ids (+ margin) for the reward-model trainer."""
    import datasets

    from lmforge.data.encode import Settings
    from lmforge.data.preference_fit import fit

    cols: dict[str, list] = {"chosen_ids": [], "rejected_ids": [], "margin": []}
    dropped = 0
    settings = Settings(max_length=max_length, truncation=truncation)
    for p in pairs:
        got = fit(p.prompt, [p.chosen, p.rejected], tokenizer, settings)  # the pair as one
        if got is None:
            dropped += 1
            continue
        cols["chosen_ids"].append(got[2][0])
        cols["rejected_ids"].append(got[2][1])
        cols["margin"].append(p.margin if p.margin is not None else (default_margin or 0.0))
    if dropped:
        log.warning("dropped %d pairs longer than data.max_length=%d", dropped, max_length)
    if not cols["chosen_ids"]:
        raise DataError("no pair fits in data.max_length", pairs[0].where if pairs else None,
                        hint="raise data.max_length")
    if default_margin is None and all(p.margin is None for p in pairs):
        del cols["margin"]
    return datasets.Dataset.from_dict(cols), dropped
