"""Packing invariant: the loss of a packed batch equals the summed per-example loss (rel 1e-5).

Every example is also run alone (no padding, no neighbours); if any packed example could see
another one, or its first token were predicted from its neighbour's last token, the sums differ.
Negative controls show the test is sensitive: with a KV cache on, or with an all-ones attention
mask, transformers builds a plain causal mask and the packed loss changes.
"""

from __future__ import annotations

import random

import pytest

from lmforge.data.collate import PackedCollator, varlen_kwargs
from lmforge.data.packing import IGNORE, best_fit_decreasing, pack_rows, segment_lengths
from lmforge.training.context import RunContext

MAX_LEN = 48


def _examples(n=9, seed=0):
    rng = random.Random(seed)
    ids, labels = [], []
    for _ in range(n):
        length = rng.randint(3, 30)
        seq = [rng.randint(10, 1000) for _ in range(length)]
        prompt = rng.randint(0, length - 2)  # prompt tokens untrained, like SFT
        ids.append(seq)
        labels.append([IGNORE] * prompt + seq[prompt:])
    return ids, labels


def _summed_loss(model, batch):
    """(sum of token losses, number of trained tokens) for one forward pass."""
    out = model(**batch)
    n = int((batch["labels"][:, 1:] != IGNORE).sum())
    return out.loss.double() * n, n


def _separate(model, ids, labels):
    import torch

    total, count = 0.0, 0
    for seq, lab in zip(ids, labels):
        s, n = _summed_loss(model, {"input_ids": torch.tensor([seq]),
                                    "labels": torch.tensor([lab])})
        if n:
            total, count = total + s, count + n
    return total, count


def test_best_fit_decreasing_places_every_item_once_within_capacity():
    rng = random.Random(1)
    lengths = [rng.randint(1, 50) for _ in range(300)]
    bins = best_fit_decreasing(lengths, 64)
    placed = sorted(i for b in bins for i in b)
    assert placed == list(range(300))
    assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    # best fit: no two bins could be merged
    loads = sorted(sum(lengths[i] for i in b) for b in bins)
    assert loads[0] + loads[1] > 64
    assert best_fit_decreasing([5, 3, 4, 4], 8) == [[0, 1], [2, 3]]


def test_pack_rows_restarts_positions_and_masks_first_tokens():
    ids, labels = _examples()
    rows, stats = pack_rows(ids, labels, MAX_LEN)
    assert stats.tokens == sum(map(len, ids)) and stats.blocks == len(rows["input_ids"])
    seen = 0
    for row_ids, row_lab, row_pos in zip(rows["input_ids"], rows["labels"], rows["position_ids"]):
        assert len(row_ids) == len(row_lab) == len(row_pos) <= MAX_LEN
        start = 0
        for n in segment_lengths(row_pos):
            assert row_pos[start:start + n] == list(range(n))
            assert row_lab[start] == IGNORE  # never predicted from the previous example
            start += n
            seen += 1
    assert seen == len(ids)
    long_rows, long_stats = pack_rows([list(range(10, 110))], [list(range(10, 110))], 32)
    assert long_stats.split == 1 and [len(r) for r in long_rows["input_ids"]] == [32, 32, 32, 4]


def test_varlen_kwargs_cover_the_flattened_batch():
    kw = varlen_kwargs([[0, 1, 2, 0, 1], [0, 1, 0, 1, 2]])
    assert kw["cu_seq_lens_q"].tolist() == [0, 3, 5, 7, 10]
    assert kw["max_length_q"] == 3


@pytest.fixture(scope="module")
def packed_batch():
    ids, labels = _examples()
    rows, _ = pack_rows(ids, labels, MAX_LEN)
    assert len(rows["input_ids"]) >= 3  # several blocks, several examples per block
    feats = [dict(input_ids=a, labels=b, position_ids=c)
             for a, b, c in zip(rows["input_ids"], rows["labels"], rows["position_ids"])]
    batch = PackedCollator(pad_token_id=0)(feats)
    assert "attention_mask" not in batch
    assert batch["input_ids"].shape[0] == len(feats)
    return ids, labels, batch


def _model(path, attn):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn,
                                                 dtype=torch.float32)
    model.config.use_cache = False
    return model.eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_summed_per_example_loss(tiny_model_dir, packed_batch, attn):
    import torch

    ids, labels, batch = packed_batch
    model = _model(tiny_model_dir, attn)
    with torch.no_grad():
        packed, n_packed = _summed_loss(model, batch)
        alone, n_alone = _separate(model, ids, labels)
        assert n_packed == n_alone
        assert float(packed) == pytest.approx(float(alone), rel=1e-5)
        # negative controls: the same batch leaks with a KV cache or an explicit 2D mask
        model.config.use_cache = True
        leaky, _ = _summed_loss(model, batch)
        model.config.use_cache = False
        masked, _ = _summed_loss(model, dict(batch, attention_mask=torch.ones_like(
            batch["input_ids"])))
    assert abs(float(leaky) - float(alone)) > 1e-3 * abs(float(alone))
    assert abs(float(masked) - float(alone)) > 1e-3 * abs(float(alone))


def test_trainer_path_keeps_examples_isolated(tiny_model_dir, packed_batch, tmp_path):
    """Through the stages' Trainer (model loaded with use_cache=True in its config), the loss
    the optimiser sees is still the isolated one."""
    import torch

    from lmforge.config import validate
    from lmforge.training import trainer as T
    from lmforge.training.args import build_arguments

    ids, labels, batch = packed_batch
    cfg = validate({"model": {"path": str(tiny_model_dir)}, "adapter": {"type": "full"},
                    "data": {"packing": True, "max_length": MAX_LEN},
                    "train": {"output_dir": str(tmp_path), "report_to": ["none"]}})
    model = _model(tiny_model_dir, "sdpa")
    model.config.use_cache = True
    args = build_arguments(cfg, has_eval=False)
    trainer = T.build_trainer(RunContext(cfg, tmp_path, None, None), model, args, None,
                              collator=PackedCollator(0))
    assert model.config.use_cache is False
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        alone, n = _separate(model, ids, labels)
    assert float(loss) * n == pytest.approx(float(alone), rel=1e-5)


def test_packing_with_kv_cache_requested_is_refused(tiny_model_dir, tmp_path):
    from lmforge.config import validate
    from lmforge.errors import ConfigError
    from lmforge.training import trainer as T
    from lmforge.training.args import build_arguments

    cfg = validate({"model": {"path": str(tiny_model_dir)}, "data": {"packing": True},
                    "train": {"output_dir": str(tmp_path), "report_to": ["none"],
                              "extra": {"use_cache": True}}})
    args = build_arguments(cfg, has_eval=False)
    with pytest.raises(ConfigError, match="use_cache"):
        T.build_trainer(RunContext(cfg, tmp_path, None, None), _model(tiny_model_dir, "sdpa"),
                        args, None, collator=PackedCollator(0))


def test_model_that_ignores_packed_positions_is_refused(tiny_model_dir, tmp_path):
    """The pre-training probe catches a model whose attention ignores packed position ids."""
    from lmforge.config import validate
    from lmforge.data.packing import isolation_error
    from lmforge.errors import ConfigError
    from lmforge.training import trainer as T
    from lmforge.training.args import build_arguments

    model = _model(tiny_model_dir, "eager")
    assert isolation_error(model) < 1e-3
    forward = model.forward
    model.forward = lambda *a, position_ids=None, **k: forward(*a, **k)  # drops them
    assert isolation_error(model) > 0.5
    cfg = validate({"model": {"path": str(tiny_model_dir)}, "data": {"packing": True},
                    "train": {"output_dir": str(tmp_path), "report_to": ["none"]}})
    with pytest.raises(ConfigError, match="ignores packed position ids"):
        T.build_trainer(RunContext(cfg, tmp_path, None, None), model,
                        build_arguments(cfg, has_eval=False), None, collator=PackedCollator(0))
