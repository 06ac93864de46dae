"""The encoder's array pieces equal their plain definitions written out with Python lists below:

- ``labels.lookup_ranges`` (token ranges from a few look-ups in the Rust ``Encoding``) gives the
  binary search over the offsets, or says it cannot tell, on texts with special tokens, runs of
  spaces, newlines, non-ASCII and byte-fallback characters, for random spans;
- ``labels.label_rows`` gives, per text, the labels and source | target split of the per-row
  rule, for every ``train_on``;
- ``encode.limits`` gives the per-example length rule for every truncation setting;
- ``ragged.Rows`` cuts, takes and concatenates rows as list slicing does.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from lmforge.data import ragged
from lmforge.data.encode import Settings, limits
from lmforge.data.labels import label_rows, lookup_ranges, offset_ranges

IGNORE = -100
PIECES = ["hello", " world", "  ", "\n", "\n\n", "<|im_start|>", "<|im_end|>", "assistant",
          "É", "中文", "✓", "🙂", " x", "\t", "a  b", "ok."]


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 25)))


def _spans(rng: random.Random, n: int) -> list[tuple[int, int]]:
    cuts = sorted(rng.sample(range(n + 1), min(n + 1, 2 * rng.randint(0, 3))))
    return [(a, b) for a, b in zip(cuts[0::2], cuts[1::2]) if a < b]


def test_lookups_equal_the_search_over_the_offsets(tiny_tokenizer):
    backend = tiny_tokenizer.backend_tokenizer
    rng = random.Random(0)
    texts = [_text(rng) for _ in range(600)]
    told = 0
    for text, enc in zip(texts, backend.encode_batch(texts, add_special_tokens=False)):
        for _ in range(3):
            spans = _spans(rng, len(text))
            found = lookup_ranges(enc, spans, len(enc.ids))
            if found is not None:
                told += 1
                assert found == offset_ranges(enc.offsets, spans, True), (text, spans)
    assert told > 1000  # the look-ups decided most cases


class _Offsets:
    """An Encoding stand-in over given offsets (zero-width and overlapping tokens included)."""

    def __init__(self, offsets):
        self.offsets = offsets

    def char_to_token(self, pos):
        return next((i for i, (s, e) in enumerate(self.offsets) if s <= pos < e), None)

    def token_to_chars(self, i):
        return self.offsets[i]


@pytest.mark.parametrize("seed", range(4))
def test_lookups_on_gaps_zero_width_and_shared_offsets(seed):
    rng = random.Random(seed)
    told = 0
    for _ in range(300):
        offsets, at = [], 0
        for _ in range(rng.randint(0, 12)):
            at += rng.choice([0, 0, 1])  # gaps
            width = rng.choice([0, 1, 1, 2, 3])  # zero-width tokens
            for _ in range(rng.choice([1, 1, 2])):  # tokens sharing one character range
                offsets.append((at, at + width))
            at += width
        spans = _spans(rng, at + 1)
        found = lookup_ranges(_Offsets(offsets), spans, len(offsets))
        if found is not None:
            told += 1
            assert found == offset_ranges(offsets, spans, True), (offsets, spans)
    assert 50 < told < 300  # decided often, and refused some boundaries


def _plain_labels(ids, ranges, train_on):
    labels = list(ids) if train_on == "all" else [IGNORE] * len(ids)
    if train_on != "all":
        for a, b in (ranges[-1:] if train_on == "last_assistant" else ranges):
            labels[a:b] = ids[a:b]
    split = ranges[-1][0] if ranges and ranges[-1][1] > ranges[-1][0] else len(ids)
    return labels, split


@pytest.mark.parametrize("train_on", ["all_assistant", "last_assistant", "all"])
def test_label_rows_equal_the_per_row_rule(train_on):
    rng = random.Random(1)
    ids, ranges = [], []
    for _ in range(300):
        n = rng.choice([0, 1, rng.randint(2, 60)])
        ids.append([rng.randrange(50_000) for _ in range(n)])
        cuts = sorted(rng.choices(range(n + 1), k=2 * rng.randint(0, 3)))
        found = list(zip(cuts[0::2], cuts[1::2]))  # empty ranges too
        if found and rng.random() < 0.2:  # a span no token overlaps (the linear scan's (0, 0))
            found.insert(rng.randrange(len(found) + 1), (0, 0))
        ranges.append(found)
    rows, split = label_rows(ids, ranges, train_on)
    for r, (x, rr) in enumerate(zip(ids, ranges)):
        labels, want_split = _plain_labels(x, rr, train_on)
        assert rows.row(r) == (x, labels) and split[r] == want_split


def _plain_limits(split: int, n: int, s: Settings):
    src, tgt = split, n - split
    if s.max_source_length:
        src = min(src, s.max_source_length)
    if s.max_target_length:
        tgt = min(tgt, s.max_target_length)
    limit = s.max_length
    if not limit or src + tgt <= limit:
        return src, tgt, False
    if s.truncation == "drop":
        return src, tgt, True
    if s.truncation == "truncate_response":
        return min(src, limit), max(0, limit - src), False
    keep_src = max(limit - tgt, min(src, limit // 4))
    return keep_src, limit - keep_src, False


@pytest.mark.parametrize("truncation", ["truncate_prompt", "truncate_response", "drop"])
def test_limits_equal_the_per_example_rule(truncation):
    rng = random.Random(2)
    lengths = np.array([rng.randint(0, 120) for _ in range(400)])
    split = np.array([rng.randint(0, n) for n in lengths])
    for max_length in (None, 1, 17, 64, 200):
        for source, target in ((None, None), (10, None), (None, 7), (30, 40)):
            s = Settings(max_length, truncation, source, target)
            got = limits(split, lengths, s)
            for k in range(len(lengths)):
                assert tuple(int(x[k]) for x in got) == \
                    _plain_limits(int(split[k]), int(lengths[k]), s)


def test_rows_cut_take_and_concat_equal_list_slicing():
    rng = random.Random(3)
    ids = [[rng.randrange(1000) for _ in range(rng.choice([0, rng.randint(1, 30)]))]
           for _ in range(200)]
    labels = [[t if rng.random() < 0.5 else IGNORE for t in x] for x in ids]
    rows = ragged.Rows.from_lists(ids, labels)
    lo = np.array([rng.randint(0, len(x)) for x in ids])
    hi = np.array([rng.randint(a, len(x)) for a, x in zip(lo, ids)])
    cut = rows.cut(lo, hi)
    assert [cut.row(r) for r in range(len(cut))] == \
        [(x[a:b], y[a:b]) for x, y, a, b in zip(ids, labels, lo, hi)]
    picked = np.array([rng.randrange(200) for _ in range(150)])
    taken = rows.take(picked)
    assert [taken.row(r) for r in range(len(taken))] == [(ids[i], labels[i]) for i in picked]
    both = ragged.Rows.concat([rows, taken, ragged.Rows.empty()])
    assert [both.row(r) for r in range(len(both))] == \
        [(x, y) for x, y in zip(ids, labels)] + [(ids[i], labels[i]) for i in picked]
