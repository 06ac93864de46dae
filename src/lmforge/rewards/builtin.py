"""Built-in reward functions, in the signature trl's GRPOTrainer uses (and our PPO loop too):
``f(completions, **columns) -> list[float]``; extra keyword arguments (prompts, completion_ids,
dataset columns, trl's trainer_state...) are accepted and ignored unless a function needs them.

Parameters such as the gold column or the regex come from the config's ``kwargs``:
``{function: exact_match, kwargs: {column: answer}}``.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Any

from lmforge.errors import ConfigError


def completion_text(completion: Any) -> str:
    """A completion as text: a string, or trl's conversational form (a list of messages)."""
    if isinstance(completion, list):
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces (the usual exact-match normaliser)."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def _column(kwargs: dict, column: str, function: str) -> list:
    if column not in kwargs or kwargs[column] is None:
        have = sorted(k for k in kwargs if k not in ("prompts", "completion_ids", "trainer_state",
                                                     "log_extra", "log_metric"))
        raise ConfigError(f"reward {function}: the data has no column '{column}' (columns: "
                          f"{', '.join(have) or 'none'}); set kwargs: {{column: <name>}}")
    return kwargs[column]


def exact_match(completions: list, column: str = "answer", normalized: bool = True,
                **kwargs) -> list[float]:
    """1.0 when the completion equals the gold answer in ``column`` (normalised by default)."""
    gold = _column(kwargs, column, "exact_match")
    prep = normalize if normalized else str.strip
    return [float(prep(completion_text(c)) == prep(str(g))) for c, g in zip(completions, gold)]


def contains(completions: list, target: str | None = None, column: str | None = None,
             ignore_case: bool = True, **kwargs) -> list[float]:
    """1.0 when the completion contains ``target`` (or the row's value in ``column``)."""
    if target is None and column is None:
        raise ConfigError("reward contains: give kwargs target: <text> or column: <name>")
    targets = _column(kwargs, column, "contains") if column else [target] * len(completions)

    def fold(s: str) -> str:
        return s.lower() if ignore_case else s

    return [float(fold(str(t)) in fold(completion_text(c))) for c, t in zip(completions, targets)]


def regex_match(completions: list, pattern: str | None = None, full: bool = False,
                **kwargs) -> list[float]:
    """1.0 when the completion matches ``pattern`` (anywhere; the whole text with full: true)."""
    if not pattern:
        raise ConfigError("reward regex_match: give kwargs pattern: <regex>")
    try:
        rx = re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise ConfigError(f"reward regex_match: bad pattern {pattern!r}: {exc}") from None
    find = rx.fullmatch if full else rx.search
    return [float(find(completion_text(c).strip()) is not None) for c in completions]


def length_penalty(completions: list, limit: int = 200, unit: str = "chars", scale: float = 1.0,
                   completion_ids: list | None = None, **kwargs) -> list[float]:
    """0 up to ``limit`` characters/words/tokens, then -scale per ``limit`` beyond it."""
    if limit <= 0:
        raise ConfigError("reward length_penalty: limit must be positive")

    def size(i: int, c: Any) -> int:
        if unit == "tokens":
            if completion_ids is None:
                raise ConfigError("reward length_penalty: unit tokens needs completion_ids")
            return len(completion_ids[i])
        text = completion_text(c)
        return len(text.split()) if unit == "words" else len(text)

    if unit not in ("chars", "words", "tokens"):
        raise ConfigError(f"reward length_penalty: unit must be chars, words or tokens ({unit!r})")
    return [-scale * max(0, size(i, c) - limit) / limit for i, c in enumerate(completions)]


@lru_cache(maxsize=1)
def _vader():
    from lmforge.errors import require

    module = require("vaderSentiment.vaderSentiment", "rl", "the sentiment reward",
                     package="vaderSentiment")
    return module.SentimentIntensityAnalyzer()


def sentiment(completions: list, score: str = "compound", **kwargs) -> list[float]:
    """VADER sentiment of the completion (rule-based, offline): ``compound`` in [-1, 1], or
    ``pos``/``neg``/``neu`` in [0, 1]."""
    if score not in ("compound", "pos", "neg", "neu"):
        raise ConfigError(f"reward sentiment: score must be compound, pos, neg or neu ({score!r})")
    analyzer = _vader()
    return [float(analyzer.polarity_scores(completion_text(c))[score]) for c in completions]


BUILTINS = {f.__name__: f for f in (exact_match, contains, regex_match, length_penalty,
                                    sentiment)}
