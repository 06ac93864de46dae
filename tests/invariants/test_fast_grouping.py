"""Length-grouped batches (train.group_by_length, training/grouping.py) change only the ORDER of
the examples: every example exactly once per epoch, whole groups of one optimizer step, the order
a function of (seed, epoch); and they cut the padding of random batches several-fold."""

from __future__ import annotations

import random

import pytest

from tests.conftest import write_jsonl


def _lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [max(4, int(rng.lognormvariate(4.3, 0.4))) for _ in range(n)]


def _pad_fraction(order: list[int], lengths: list[int], batch: int) -> float:
    computed = real = 0
    for s in range(0, len(order), batch):
        chunk = [lengths[i] for i in order[s:s + batch]]
        computed += max(chunk) * len(chunk)
        real += sum(chunk)
    return 1 - real / computed


@pytest.mark.parametrize("n,group", [(500, 8), (203, 8), (37, 16), (5, 8)])
def test_each_example_once_in_whole_groups(n, group):
    from lmforge.training.grouping import GroupedSampler

    sampler = GroupedSampler(_lengths(n), group, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(n)) and len(sampler) == n
    groups = sampler.groups()
    assert all(len(g) == group for g in groups[:-1]) and 0 < len(groups[-1]) <= group
    assert [i for g in groups for i in g] == order


def test_order_depends_on_seed_and_epoch_only():
    from lmforge.training.grouping import GroupedSampler

    lengths = _lengths(300)
    a, b = GroupedSampler(lengths, 8, seed=1), GroupedSampler(lengths, 8, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(GroupedSampler(lengths, 8, seed=2)) != list(GroupedSampler(lengths, 8, seed=1))


def test_padding_far_below_random_batches():
    from lmforge.training.grouping import GroupedSampler

    lengths = _lengths(512)
    order = list(range(512))
    random.Random(0).shuffle(order)
    grouped = _pad_fraction(list(GroupedSampler(lengths, 8, seed=0)), lengths, 8)
    assert grouped < _pad_fraction(order, lengths, 8) / 4
    assert grouped < 0.05


def test_sft_run_trains_every_token_once(tiny_model_dir, tmp_path, monkeypatch):
    from lmforge.config import validate
    from lmforge.stages import run
    from lmforge.training.grouping import GroupedSampler

    rng = random.Random(2)
    rows = [{"instruction": " ".join("word" for _ in range(rng.randint(2, 40))), "input": "",
             "output": " ".join("yes" for _ in range(rng.randint(1, 12)))} for _ in range(40)]
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    used = []
    real_iter = GroupedSampler.__iter__
    monkeypatch.setattr(GroupedSampler, "__iter__", lambda s: used.append(1) or real_iter(s))

    def tokens(group: bool) -> int:
        cfg = validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                        "data": {"train": str(data), "format": "alpaca", "max_length": 96},
                        "train": {"output_dir": str(tmp_path / f"g{group}"), "epochs": 1,
                                  "batch_size": 4, "save_steps": 1000, "report_to": ["none"],
                                  "num_threads": 1, "group_by_length": group}})
        return run(cfg).metrics["train_tokens"]

    plain = tokens(False)
    assert not used
    assert tokens(True) == plain and used
