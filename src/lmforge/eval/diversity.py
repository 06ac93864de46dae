"""Reward-hacking diagnostics of sampled completions: pure functions on texts.

A policy that games its reward usually stops writing varied text: it repeats one stock sentence
("I'm so glad you're enjoying the movie.") or a few words. These numbers show it:

- ``distinct_1`` / ``distinct_2``: distinct words / word pairs over all the completions divided by
  their total count (Li et al., 2016): near 1 for varied text, near 0 for a collapsed policy;
- ``top_opening_share``: the share of completions that start with the most frequent opening (its
  first ``opening_words`` words), with ``top_opening`` the opening itself;
- ``mean_words``: the mean completion length in words.

``collapse_warning`` says when the most frequent opening exceeds a share of the samples. The RL
stages compute these at every evaluation (lmforge.rl.diagnostics).
"""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"\w+(?:['’]\w+)*")
OPENING_WORDS = 4
COLLAPSE_SHARE = 0.2


def words(text: str) -> list[str]:
    """Lower-cased words (punctuation dropped; "you're" stays one word)."""
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over ``texts`` (0.0 when there are none)."""
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def opening(text: str, n_words: int = OPENING_WORDS) -> str:
    return " ".join(words(text)[:n_words])


def top_opening(texts: list[str], n_words: int = OPENING_WORDS) -> tuple[str, int]:
    """The most frequent opening of ``texts`` and how many start with it ("" for no words)."""
    if not texts:
        return "", 0
    return Counter(opening(t, n_words) for t in texts).most_common(1)[0]


def diagnostics(texts: list[str], n_words: int = OPENING_WORDS) -> dict:
    """distinct_1, distinct_2, top_opening_share, mean_words (floats) and top_opening (text)."""
    top, count = top_opening(texts, n_words)
    lengths = [len(words(t)) for t in texts]
    return {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
            "top_opening_share": count / len(texts) if texts else 0.0,
            "mean_words": sum(lengths) / len(lengths) if lengths else 0.0,
            "top_opening": top, "samples": len(texts)}


def collapse_warning(found: dict, threshold: float = COLLAPSE_SHARE) -> str | None:
    """A warning when more than ``threshold`` of the samples (and at least two) share their
    opening; None otherwise. ``found`` is the output of ``diagnostics``."""
    n = found["samples"]
    share = found["top_opening_share"]
    if n < 2 or share <= threshold or round(share * n) < 2:
        return None
    return (f"{share:.0%} of {n} sampled completions start with the same words "
            f"({found['top_opening']!r}; threshold {threshold:.0%}), distinct-2 "
            f"{found['distinct_2']:.2f}: the policy may be hacking its reward with a stock "
            "phrase. Raise beta / kl_coef (the pull to the base model), add the shaping rewards "
            "(repetition_penalty, on_task, length_bounds) or lower the learning rate")
