"""Verification of teacher samples (pure functions): extract the final answer with a regex, then
keep the samples that agree with the record's gold answer, or with the majority answer.

Answers are compared after normalisation (whitespace, surrounding markup, trailing period, case)
and numbers as numbers, so ``42``, ``42.0`` and ``**42**.`` agree.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from lmforge.config.distill import VerifyConfig

_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Verdict:
    keep: bool
    answer: str | None  # the extracted answer, if any
    reason: str = ""  # why it was rejected


def extract(text: str, pattern: str) -> str | None:
    """The last match of ``pattern`` in ``text``: group 'answer', else group 1, else the match."""
    rx = re.compile(pattern)
    matches = list(rx.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    if "answer" in rx.groupindex:
        value = last.group("answer")
    elif rx.groups:
        value = last.group(1)
    else:
        value = last.group(0)
    return value.strip() if value is not None else None


def normalize(answer: object, ignore_case: bool = True) -> str:
    text, before = " ".join(str(answer).split()), None
    while text != before:  # peel markup and a final period in any order: "**42**." -> "42"
        before, text = text, text.strip("*_`$ ").rstrip(".")
    if _NUMBER.match(text) and any(c.isdigit() for c in text):
        try:
            value = float(text.replace(",", ""))
            return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
        except ValueError:
            pass
    return text.casefold() if ignore_case else text


def judge(responses: list[str], cfg: VerifyConfig | None, gold: object = None) -> list[Verdict]:
    """One verdict per response (the teacher's final-answer text of each sample)."""
    if cfg is None:
        return [Verdict(True, None) for _ in responses]
    answers = [extract(r, cfg.answer_pattern) for r in responses]
    norm = [normalize(a, cfg.ignore_case) if a else None for a in answers]
    if cfg.mode == "gold":
        want = normalize(gold, cfg.ignore_case)
        return [Verdict(True, a) if n == want else
                Verdict(False, a, _missing(cfg) if a is None else f"answer {a!r} != gold {gold!r}")
                for a, n in zip(answers, norm)]
    return _majority(answers, norm, cfg)


def _missing(cfg: VerifyConfig) -> str:
    return f"no answer matched verify.answer_pattern {cfg.answer_pattern!r}"


def _majority(answers: list, norm: list, cfg: VerifyConfig) -> list[Verdict]:
    votes = Counter(n for n in norm if n is not None)
    ranked = votes.most_common(2)
    total = len(answers)
    if not ranked:
        return [Verdict(False, a, _missing(cfg)) for a in answers]
    winner, count = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == count:
        return [Verdict(False, a, _missing(cfg) if a is None else
                        f"no majority: tie at {count}/{total} votes") for a in answers]
    if count / total < cfg.min_agreement:
        return [Verdict(False, a, _missing(cfg) if a is None else
                        f"majority answer has {count}/{total} votes, below verify.min_agreement "
                        f"{cfg.min_agreement}") for a in answers]
    out = []
    for a, n in zip(answers, norm):
        if n == winner:
            out.append(Verdict(True, a))
        else:
            out.append(Verdict(False, a, _missing(cfg) if a is None else
                               f"answer {a!r} disagrees with the majority ({count}/{total} votes)"))
    return out
