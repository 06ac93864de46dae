"""Task metrics as pure functions of predictions and references (all scores in [0, 1]).

Label metrics (accuracy, precision/recall/F1, exact match) compare strings after ``normalize``
(strip, case-fold, drop punctuation, collapse spaces). A prediction that yields no label (empty, or
the answer pattern did not match: ``None``) lands in the ``UNPARSEABLE`` bucket: it is wrong for
accuracy, a false negative for its gold class, and no class's false positive (an abstention).
Precision/recall/F1 follow scikit-learn's conventions over the label set = gold labels plus
parseable predicted labels (a spurious predicted label is a class with F1 0 in the macro mean);
macro = unweighted mean over that set, micro = pooled counts (micro recall = accuracy).

Text metrics (ROUGE, BLEU) live in ``lmforge.eval.text_metrics``. ``compute`` dispatches metric
names from ``eval.metrics`` (including user metrics given as ``"module:function"``).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Callable, Sequence

from lmforge.errors import ConfigError

UNPARSEABLE = "<unparseable>"
_SPACES = re.compile(r"\s+")


def normalize(text: str, case: bool = True, punctuation: bool = True) -> str:
    """Strip, case-fold (``case``), drop Unicode punctuation (``punctuation``), collapse spaces."""
    if case:
        text = text.casefold()
    if punctuation:
        text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return _SPACES.sub(" ", text).strip()


def to_label(value: str | None, norm: bool = True) -> str:
    """A comparable label; ``None`` or an empty string is ``UNPARSEABLE``."""
    if value is None:
        return UNPARSEABLE
    label = normalize(value) if norm else value.strip()
    return label or UNPARSEABLE


def _labels(predictions: Sequence[str | None], references: Sequence[str | None],
            norm: bool) -> tuple[list[str], list[str]]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    return [to_label(p, norm) for p in predictions], [to_label(r, norm) for r in references]


def accuracy(predictions: Sequence[str | None], references: Sequence[str | None],
             norm: bool = True) -> float:
    preds, refs = _labels(predictions, references, norm)
    if not refs:
        return 0.0
    return sum(p == r and p != UNPARSEABLE for p, r in zip(preds, refs)) / len(refs)


def exact_match(predictions: Sequence[str | None], references: Sequence[str | None],
                norm: bool = True) -> float:
    """Share of whole predictions equal to their reference (after ``normalize`` when ``norm``)."""
    return accuracy(predictions, references, norm)


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _f1(p: float, r: float) -> float:
    return _ratio(2 * p * r, p + r)


def precision_recall_f1(predictions: Sequence[str | None], references: Sequence[str | None],
                        norm: bool = True) -> dict[str, float]:
    """Macro (``precision``, ``recall``, ``f1``) and micro (``*_micro``) scores, plus the share of
    unparseable predictions (``unparseable``)."""
    preds, refs = _labels(predictions, references, norm)
    classes = sorted((set(refs) | set(preds)) - {UNPARSEABLE})
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for p, r in zip(preds, refs):
        if p == r and p != UNPARSEABLE:
            tp[p] += 1
            continue
        if p != UNPARSEABLE:
            fp[p] += 1
        if r != UNPARSEABLE:
            fn[r] += 1
    per_p = [_ratio(tp[c], tp[c] + fp[c]) for c in classes]
    per_r = [_ratio(tp[c], tp[c] + fn[c]) for c in classes]
    per_f = [_f1(p, r) for p, r in zip(per_p, per_r)]
    n = len(classes)
    TP, FP, FN = sum(tp.values()), sum(fp.values()), sum(fn.values())
    micro_p, micro_r = _ratio(TP, TP + FP), _ratio(TP, TP + FN)
    return {
        "precision": _ratio(sum(per_p), n), "recall": _ratio(sum(per_r), n),
        "f1": _ratio(sum(per_f), n), "precision_micro": micro_p, "recall_micro": micro_r,
        "f1_micro": _f1(micro_p, micro_r),
        "unparseable": _ratio(preds.count(UNPARSEABLE), len(preds)),
    }


def perplexity(losses: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """exp of the (token-weighted) mean negative log-likelihood."""
    if not losses:
        return float("nan")
    weights = list(weights) if weights is not None else [1.0] * len(losses)
    mean = sum(w * x for w, x in zip(weights, losses)) / sum(weights)
    return math.exp(min(mean, 700.0))


def pairwise_accuracy(chosen_scores: Sequence[float], rejected_scores: Sequence[float]) -> float:
    """Reward-model accuracy: share of pairs whose chosen answer scores strictly higher."""
    if len(chosen_scores) != len(rejected_scores):
        raise ValueError("chosen and rejected scores differ in length")
    if not chosen_scores:
        return 0.0
    return sum(c > r for c, r in zip(chosen_scores, rejected_scores)) / len(chosen_scores)


def user_metric(spec: str) -> Callable:
    """Import ``"module:function"`` (a callable of predictions, references) from the working
    directory (the shared resolver: never from elsewhere on the Python path)."""
    from lmforge.utils.resolve import resolve

    return resolve(spec, f"eval.metrics: metric '{spec}'")


def _user(spec: str, predictions, references) -> dict[str, float]:
    value = user_metric(spec)(list(predictions), list(references))
    name = spec.partition(":")[2]
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    return {name: float(value)}


def compute(names: Sequence[str], predictions: Sequence[str], references: Sequence[str],
            answers: Sequence[str | None] | None = None, gold: Sequence[str | None] | None = None,
            norm: bool = True) -> dict[str, float]:
    """Every requested metric as ``{key: value}``. Label metrics compare ``answers`` with ``gold``
    (the extracted answers; default: the whole texts); text metrics the whole texts."""
    from lmforge.eval import text_metrics

    answers = list(predictions) if answers is None else list(answers)
    gold = list(references) if gold is None else list(gold)
    out: dict[str, float] = {}
    prf = None
    for name in names:
        if name == "accuracy":
            out["accuracy"] = accuracy(answers, gold, norm)
        elif name in ("f1", "precision", "recall"):
            prf = prf or precision_recall_f1(answers, gold, norm)
            out.update({k: v for k, v in prf.items() if k.startswith(name) or k == "unparseable"})
        elif name == "exact_match":
            out["exact_match"] = exact_match(predictions, references, norm)
        elif name == "rouge":
            out.update(text_metrics.rouge(predictions, references))
        elif name == "bleu":
            out["bleu"] = text_metrics.bleu(predictions, references)
        elif ":" in name:
            out.update(_user(name, predictions, references))
        elif name != "perplexity":  # perplexity comes from the loss, not from generations
            raise ConfigError(f"eval.metrics: unknown metric '{name}'")
    return out
