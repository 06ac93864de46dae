"""Pre-flight checks over the whole encoded dataset, before any model is loaded or trained.

The statistics (``BuiltData.stats``) say how much is really trained: examples, trained and total
tokens, examples with nothing trained, truncated and dropped counts, whether each trained example
ends its turns with EOS / end-of-turn, a length histogram and the padding a batch would carry.
``enforce`` turns what would waste or poison a run into errors (nothing trained at all) and
warnings (some examples with nothing trained, EOS missing, much truncation).
"""

from __future__ import annotations

import logging
from typing import Sequence

from lmforge.data.encode import IGNORE
from lmforge.errors import DataError

log = logging.getLogger(__name__)


def histogram(lengths, bins: int = 10) -> list[dict]:
    """Equal-width bins from the shortest to the longest example:
    [{'range': [lo, hi], 'count': n}] (ranges inclusive). ``lengths``: a sequence or array."""
    import numpy as np

    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return []
    lo, hi = int(lengths.min()), int(lengths.max())
    width = max(1, -(-(hi - lo + 1) // bins))
    counts = np.bincount((lengths - lo) // width, minlength=-(-(hi - lo + 1) // width))
    return [{"range": [lo + i * width, lo + (i + 1) * width - 1], "count": int(c)}
            for i, c in enumerate(counts)]


def pad_fraction(lengths, batch_size: int) -> float:
    """Padding share of batches of ``batch_size`` consecutive examples, each padded to its
    longest (the data order given; a shuffled order pads about as much on average)."""
    import numpy as np

    lengths = np.asarray(lengths, dtype=np.int64)
    if not len(lengths):
        return 0.0
    starts = np.arange(0, len(lengths), batch_size)
    sizes = np.diff(np.append(starts, len(lengths)))
    padded = int((np.maximum.reduceat(lengths, starts) * sizes).sum())
    total = int(lengths.sum())
    return round(1 - total / padded, 4) if padded else 0.0


def _percentile(sorted_values, q: float) -> int:
    if not len(sorted_values):
        return 0
    return int(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))])


def compute(input_ids: Sequence[Sequence[int]], labels: Sequence[Sequence[int]],
            batch_size: int, stop_ids: set[int]) -> dict:
    """Token-level statistics of one encoded split (lists of token lists)."""
    from lmforge.data import ragged

    offsets, _ = ragged.from_lists(input_ids)
    label_offsets, flat = ragged.from_lists(labels)
    return compute_ragged(offsets, label_offsets, flat, batch_size, stop_ids)


def compute_ragged(offsets, label_offsets, labels, batch_size: int, stop_ids: set[int]) -> dict:
    """``compute`` on ragged arrays (``ragged.py``): row offsets of input_ids, row offsets and
    flat values of labels. The same figures, as Python numbers."""
    import numpy as np

    from lmforge.data import ragged

    lengths = np.diff(offsets)
    trained = ragged.row_sums(label_offsets, labels != IGNORE)
    stops = np.zeros(len(labels), dtype=bool)
    for stop in stop_ids:  # one or two ids: faster than np.isin
        stops |= labels == stop
    with_eos = int(((trained > 0) & (ragged.row_sums(label_offsets, stops) > 0)).sum())
    ordered = np.sort(lengths)
    n, total, n_trained = len(lengths), int(lengths.sum()), int(trained.sum())
    return {
        "examples": n,
        "total_tokens": total,
        "trained_tokens": n_trained,
        "trained_fraction": round(n_trained / total, 4) if total else 0.0,
        "zero_trained": int((trained == 0).sum()),
        "eos_trained": with_eos,
        "eos_missing": int((trained > 0).sum()) - with_eos,
        "length": {"min": int(ordered[0]) if n else 0, "mean": round(total / n, 1)
                   if n else 0.0, "p50": _percentile(ordered, 0.5),
                   "p90": _percentile(ordered, 0.9), "max": int(ordered[-1]) if n else 0},
        "length_histogram": histogram(lengths),
        "pad_fraction": pad_fraction(lengths, batch_size),
        "batch_size": batch_size,
    }


def enforce(stats: dict, split: str = "train") -> None:
    """Raise when nothing would be trained; warn about what looks wrong. ``zero_trained``
    counts examples whose responses were all masked or truncated away (they are removed from the
    dataset: they train nothing and can make a batch's mean loss 0/0)."""
    n, zero = stats.get("examples", 0), stats.get("zero_trained", 0)
    dropped, truncated = stats.get("dropped", 0), stats.get("truncated", 0)
    if n == 0:
        raise DataError(f"{split}: no example has any trained token: {zero} have every response "
                        f"truncated or masked away, {dropped} were dropped as over-long",
                        hint="raise data.max_length, use data.truncation: truncate_prompt, or "
                        "check model.template and data.train_on")
    if zero:
        log.warning("%s: %d examples have no trained token (responses truncated or masked away) "
                    "and were removed", split, zero)
    if stats.get("eos_missing"):
        log.warning("%s: %d trained examples never train EOS / end-of-turn (truncated responses "
                    "or a template without an end token): the model may not learn to stop",
                    split, stats["eos_missing"])
    if dropped:
        log.warning("%s: %d over-long examples dropped (data.truncation: drop)", split, dropped)
    if truncated:
        log.warning("%s: %d examples truncated to data.max_length / source / target limits",
                    split, truncated)
    if stats.get("skipped_invalid"):
        log.warning("%s: %d invalid rows skipped (data.skip_invalid: true)", split,
                    stats["skipped_invalid"])


def summary(stats: dict) -> str:
    length = stats.get("length", {})
    return (f"{stats.get('examples', 0)} examples, {stats.get('total_tokens', 0):,} tokens "
            f"({stats.get('trained_fraction', 0):.1%} trained), length p50 {length.get('p50')} "
            f"max {length.get('max')}, pad {stats.get('pad_fraction', 0):.1%} per batch of "
            f"{stats.get('batch_size')}, truncated {stats.get('truncated', 0)}, dropped "
            f"{stats.get('dropped', 0)}")
