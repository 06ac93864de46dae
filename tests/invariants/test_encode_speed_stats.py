"""The pre-flight statistics computed on ragged arrays (``checks.compute_ragged``, what the
pipeline uses on the Arrow columns of an encoded split) equal the per-row definition written out
with Python lists below, on random splits with empty rows, rows with nothing trained, stop tokens
inside and outside the trained spans, and partial last batches."""

from __future__ import annotations

import json
import random

import pytest

from lmforge.data import ragged
from lmforge.data.checks import compute, compute_ragged
from lmforge.data.encoders import to_dataset

M = -100


def histogram(lengths, bins: int = 10) -> list[dict]:
    if not lengths:
        return []
    lo, hi = min(lengths), max(lengths)
    width = max(1, -(-(hi - lo + 1) // bins))
    counts = [0] * (-(-(hi - lo + 1) // width))
    for n in lengths:
        counts[(n - lo) // width] += 1
    return [{"range": [lo + i * width, lo + (i + 1) * width - 1], "count": c}
            for i, c in enumerate(counts)]


def pad_fraction(lengths, batch_size: int) -> float:
    padded = total = 0
    for i in range(0, len(lengths), batch_size):
        batch = lengths[i:i + batch_size]
        padded += max(batch) * len(batch)
        total += sum(batch)
    return round(1 - total / padded, 4) if padded else 0.0


def _by_rows(input_ids, labels, batch_size, stop_ids) -> dict:
    lengths = [len(x) for x in input_ids]
    trained = [sum(1 for t in lab if t != M) for lab in labels]
    with_eos = sum(1 for lab, n in zip(labels, trained) if n and any(t in stop_ids for t in lab))
    ordered, total = sorted(lengths), sum(lengths)

    def pct(q):
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0

    return {"examples": len(lengths), "total_tokens": total, "trained_tokens": sum(trained),
            "trained_fraction": round(sum(trained) / total, 4) if total else 0.0,
            "zero_trained": sum(1 for n in trained if n == 0), "eos_trained": with_eos,
            "eos_missing": sum(1 for n in trained if n) - with_eos,
            "length": {"min": ordered[0] if ordered else 0,
                       "mean": round(total / len(lengths), 1) if lengths else 0.0,
                       "p50": pct(0.5), "p90": pct(0.9), "max": ordered[-1] if ordered else 0},
            "length_histogram": histogram(lengths), "pad_fraction": pad_fraction(lengths,
                                                                                 batch_size),
            "batch_size": batch_size}


def _split(n: int, seed: int):
    rng = random.Random(seed)
    ids, labels = [], []
    for _ in range(n):
        row = [rng.randrange(10) for _ in range(rng.choice([0, 1, rng.randint(2, 90)]))]
        mode = rng.random()
        labels.append([M] * len(row) if mode < 0.2 else
                      [t if rng.random() < 0.5 else M for t in row])
        ids.append(row)
    return ids, labels


@pytest.mark.parametrize("seed,n,batch", [(0, 300, 8), (1, 301, 7), (2, 5, 16), (3, 0, 4)])
def test_ragged_statistics_equal_the_row_definition(seed, n, batch):
    ids, labels = _split(n, seed)
    stop = {2, 3}
    want = _by_rows(ids, labels, batch, stop)
    assert compute(ids, labels, batch, stop) == want
    offsets, _ = ragged.from_lists(ids)
    label_offsets, flat = ragged.from_lists(labels)
    got = compute_ragged(offsets, label_offsets, flat, batch, stop)
    assert got == want
    assert json.loads(json.dumps(got)) == want  # plain Python numbers (the cache stores JSON)


def test_statistics_read_from_a_dataset_equal_those_of_its_lists():
    ids, labels = _split(200, 4)
    ds = to_dataset({"input_ids": ids, "labels": labels, "where": [""] * len(ids)})
    ds = ds.select(range(199, -1, -2))
    (offsets, _), (label_offsets, flat) = (ragged.from_dataset(ds, "input_ids"),
                                           ragged.from_dataset(ds, "labels"))
    picked = range(199, -1, -2)
    assert compute_ragged(offsets, label_offsets, flat, 8, {2}) == \
        _by_rows([ids[i] for i in picked], [labels[i] for i in picked], 8, {2})
