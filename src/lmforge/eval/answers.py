"""Answers out of generations: extraction with ``eval.answer_pattern`` and majority voting.

``extract`` takes the LAST match of the pattern (reasoning often restates options before the final
"答案是：B"); the first capture group when the pattern has one, else the whole match. ``vote``
counts the extracted answers of several sampled generations (self-consistency): the most frequent
answer wins, a tie goes to the answer whose samples have the highest mean log-probability, and
samples without an answer only vote when nothing else does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from lmforge.eval.metrics import UNPARSEABLE


@lru_cache(maxsize=32)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def extract(text: str, pattern: str | None) -> str | None:
    """The answer in ``text``; None when the pattern does not match (or the text is empty)."""
    if pattern is None:
        return text.strip() or None
    found = None
    for found in _compiled(pattern).finditer(text):
        pass
    if found is None:
        return None
    value = next((g for g in found.groups() if g is not None), None) if found.groups() \
        else found.group(0)
    value = (value if value is not None else found.group(0)).strip()
    return value or None


def reference_answer(reference: str, pattern: str | None) -> str:
    """The gold answer: extracted like a prediction when the pattern matches, else the whole
    reference (references often hold just the label)."""
    return extract(reference, pattern) or reference.strip()


@dataclass
class Vote:
    answer: str | None  # the majority answer (None: no sample had one)
    index: int  # the sample chosen to represent it (highest log-prob among its voters)
    counts: dict[str, int]  # answer -> votes; samples without one count under UNPARSEABLE


def vote(answers: Sequence[str | None], logprobs: Sequence[float | None] | None = None) -> Vote:
    if not answers:
        raise ValueError("vote() needs at least one sample")
    lp = [(x if x is not None else float("-inf")) for x in (logprobs or [None] * len(answers))]
    counts: dict[str, int] = {}
    for a in answers:
        key = a if a is not None else UNPARSEABLE
        counts[key] = counts.get(key, 0) + 1
    parsed = {k: v for k, v in counts.items() if k != UNPARSEABLE}
    pool = parsed or counts
    top = max(pool.values())
    tied = [k for k, v in pool.items() if v == top]

    def members(key: str) -> list[int]:
        return [i for i, a in enumerate(answers) if (a if a is not None else UNPARSEABLE) == key]

    def mean_lp(key: str) -> float:
        vals = [lp[i] for i in members(key)]
        return sum(vals) / len(vals)

    winner = max(tied, key=mean_lp) if len(tied) > 1 else tied[0]
    index = max(members(winner), key=lambda i: lp[i])
    return Vote(None if winner == UNPARSEABLE else winner, index, counts)
