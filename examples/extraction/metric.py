"""Argument-level F1 for document event extraction: a user metric for ``eval.metrics``.

Referenced from the data config as ``examples/extraction/metric.py:argument_f1`` (a file path,
relative to the working directory: run lmforge from the repository root). lmforge calls it with
the generated answers and the reference answers (whole texts) and reports every key of the
returned dict (``arg_f1``, ...; ``eval_arg_f1`` during training).

Each event argument is a triple (event type, role, value); values compare after case-folding and
collapsing spaces. Triples are counted as multisets per document and pooled over all documents
(micro precision / recall / F1). A prediction that is not a JSON list of objects counts as no
events (it costs recall, not precision) and lowers ``json_valid``.
"""

from __future__ import annotations

import json
import re
from collections import Counter

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def parse_events(text: str) -> list[dict] | None:
    """The events of an answer, or None when it holds no JSON list of objects."""
    text = _FENCE.sub("", text.strip())
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end < start:
        return None
    try:
        value = json.loads(text[start:end + 1])
    except json.JSONDecodeError:
        return None
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        return None
    return value


def _norm(value) -> str:
    return " ".join(str(value).casefold().split()).rstrip(".")


def triples(events: list[dict] | None) -> Counter:
    out: Counter = Counter()
    for e in events or []:
        kind = _norm(e.get("event", ""))
        for role, value in e.items():
            if role != "event" and value not in (None, ""):
                out[(kind, _norm(role), _norm(value))] += 1
    return out


def argument_f1(predictions: list[str], references: list[str]) -> dict[str, float]:
    tp = n_pred = n_gold = valid = 0
    event_tp = event_pred = event_gold = 0
    for pred, ref in zip(predictions, references):
        events = parse_events(pred)
        valid += events is not None
        p, g = triples(events), triples(parse_events(ref))
        tp += sum((p & g).values())
        n_pred += sum(p.values())
        n_gold += sum(g.values())
        pt = Counter(_norm(e.get("event", "")) for e in events or [])
        gt = Counter(_norm(e.get("event", "")) for e in parse_events(ref) or [])
        event_tp += sum((pt & gt).values())
        event_pred += sum(pt.values())
        event_gold += sum(gt.values())
    precision, recall = _ratio(tp, n_pred), _ratio(tp, n_gold)
    ep, er = _ratio(event_tp, event_pred), _ratio(event_tp, event_gold)
    return {"arg_f1": _ratio(2 * precision * recall, precision + recall),
            "arg_precision": precision, "arg_recall": recall,
            "event_type_f1": _ratio(2 * ep * er, ep + er),
            "json_valid": _ratio(valid, len(predictions))}


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0
