"""Pre-flight statistics and checks as pure functions."""

from __future__ import annotations

import logging

import pytest

from lmforge.data.checks import compute, enforce, histogram, pad_fraction
from lmforge.errors import DataError

M = -100


def test_pad_fraction_of_consecutive_batches():
    # batches [4, 2] -> 8 slots, 6 real; [3] -> 3 slots, 3 real
    assert pad_fraction([4, 2, 3], 2) == round(1 - 9 / 11, 4)
    assert pad_fraction([5, 5, 5], 3) == 0.0


def test_histogram_counts_every_example():
    lengths = [3, 9, 9, 17, 40, 41]
    hist = histogram(lengths, bins=4)
    assert sum(b["count"] for b in hist) == len(lengths)
    assert hist[0]["range"][0] == 3 and hist[-1]["range"][1] >= 41
    for n in lengths:
        assert sum(b["range"][0] <= n <= b["range"][1] for b in hist) == 1


def test_compute_counts_trained_tokens_and_eos():
    eos = 2
    ids = [[5, 6, 7, eos], [5, 6, 8, 9], [5, 5]]
    labels = [[M, M, 7, eos], [M, M, 8, 9], [M, M]]
    s = compute(ids, labels, batch_size=2, stop_ids={eos})
    assert (s["examples"], s["total_tokens"], s["trained_tokens"]) == (3, 10, 4)
    assert (s["zero_trained"], s["eos_trained"], s["eos_missing"]) == (1, 1, 1)
    assert s["trained_fraction"] == 0.4 and s["length"]["max"] == 4


def test_enforce_errors_when_nothing_is_trained_and_warns_otherwise(caplog):
    with pytest.raises(DataError, match="no example has any trained token: 3 have"):
        enforce({"examples": 0, "zero_trained": 3, "dropped": 0})
    with caplog.at_level(logging.WARNING):
        enforce({"examples": 5, "zero_trained": 2, "eos_missing": 1, "truncated": 4})
    assert "2 examples have no trained token" in caplog.text
    assert "1 trained examples never train EOS" in caplog.text
    assert "4 examples truncated" in caplog.text
