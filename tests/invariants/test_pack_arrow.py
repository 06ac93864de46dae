"""Packing on Arrow columns (``packing.pack_dataset`` via ``pack_arrays``) builds exactly the
dataset the plain list definition below (``_pack_lists`` + ``Dataset.from_dict``) builds: same rows, same
types, same statistics, for empty, short, exact-fit and over-long examples, and for a dataset
seen through a selection (``Dataset.select`` keeps an indices mapping). The bins themselves
(``packing.best_fit_decreasing``) are those of best-fit-decreasing written out plainly
(``_best_fit_plain``)."""

from __future__ import annotations

import bisect
import random

import datasets
import pytest

from lmforge.data.encoders import to_dataset
from lmforge.data.packing import IGNORE, PackStats, best_fit_decreasing, pack_dataset


def _columns(n: int, seed: int, max_length: int) -> dict:
    rng = random.Random(seed)
    sizes = [rng.choice([0, 1, 2, max_length, max_length + 1, 3 * max_length + 5])
             if rng.random() < 0.15 else rng.randint(1, max_length) for _ in range(n)]
    ids = [[rng.randrange(50_000) for _ in range(k)] for k in sizes]
    labels = [[t if rng.random() < 0.6 else -100 for t in x] for x in ids]
    return {"input_ids": ids, "labels": labels, "where": [f"f.jsonl:{i}" for i in range(n)]}


def _best_fit_plain(lengths: list[int], capacity: int) -> list[list[int]]:
    """Longest items first, each into the fullest bin that still has room (ties: the input
    order, then the bin opened first)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining capacity, bin index)
    for i in order:
        n = lengths[i]
        at = bisect.bisect_left(free, (n, -1))
        if at < len(free):
            room, b = free.pop(at)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if room - n > 0:
            bisect.insort(free, (room - n, b))
    return bins


@pytest.mark.parametrize("seed", range(6))
def test_best_fit_decreasing_equals_the_plain_definition(seed):
    rng = random.Random(seed)
    capacity = rng.choice([1, 7, 64, 512])
    lengths = [rng.choice([0, 1, capacity, rng.randint(1, capacity)]) if rng.random() < 0.2
               else rng.randint(1, capacity) for _ in range(rng.randint(0, 3000))]
    assert best_fit_decreasing(lengths, capacity) == _best_fit_plain(lengths, capacity)


def test_an_item_over_capacity_is_refused():
    with pytest.raises(ValueError, match="item 1 has length 9 > block capacity 8"):
        best_fit_decreasing([3, 9, 2], 8)


def _pack_lists(input_ids, labels, max_length: int):
    """Packing written out with Python lists: over-long examples cut into block-sized pieces,
    best-fit-decreasing bins, data order within a block, first label of each example masked."""
    pieces, stats = [], PackStats(examples=len(input_ids))
    for ids, lab in zip(input_ids, labels):
        if len(ids) > max_length:
            stats.split += 1
        pieces += [(ids[s:s + max_length], lab[s:s + max_length])
                   for s in range(0, len(ids), max_length)]
    bins = _best_fit_plain([len(p[0]) for p in pieces], max_length)
    rows = {"input_ids": [], "labels": [], "position_ids": []}
    for members in bins:
        row_ids, row_labels, row_pos = [], [], []
        for i in sorted(members):
            ids, lab = pieces[i]
            row_ids += ids
            row_labels += [IGNORE] + lab[1:]
            row_pos += list(range(len(ids)))
        rows["input_ids"].append(row_ids)
        rows["labels"].append(row_labels)
        rows["position_ids"].append(row_pos)
    stats.blocks, stats.tokens = len(bins), sum(len(p[0]) for p in pieces)
    stats.fill = stats.tokens / max(1, stats.blocks * max_length)
    return rows, stats


def _reference(columns: dict, max_length: int):
    rows, stats = _pack_lists(columns["input_ids"], columns["labels"], max_length)
    return datasets.Dataset.from_dict(rows), stats


@pytest.mark.parametrize("seed,max_length", [(0, 16), (1, 64), (2, 7)])
def test_arrow_packing_equals_list_packing(seed, max_length):
    columns = _columns(400, seed, max_length)
    packed, stats = pack_dataset(to_dataset(columns), max_length)
    reference, want = _reference(columns, max_length)
    assert packed.features == reference.features
    assert packed.to_dict() == reference.to_dict()
    assert (stats.examples, stats.blocks, stats.tokens, stats.split, stats.fill) == \
        (want.examples, want.blocks, want.tokens, want.split, want.fill)
    assert want.split > 0 and want.blocks > 0  # over-long examples were really cut


def test_a_selected_dataset_packs_its_selection():
    columns = _columns(200, 3, 32)
    picked = list(range(199, 0, -3))
    ds = to_dataset(columns).select(picked)
    packed, _ = pack_dataset(ds, 32)
    subset = {k: [v[i] for i in picked] for k, v in columns.items()}
    assert packed.to_dict() == _reference(subset, 32)[0].to_dict()


def test_nothing_to_pack_gives_an_empty_dataset():
    columns = {"input_ids": [[], []], "labels": [[], []], "where": ["a", "b"]}
    packed, stats = pack_dataset(datasets.Dataset.from_dict(columns), 8)
    assert len(packed) == 0 and stats.blocks == 0 and stats.examples == 2
