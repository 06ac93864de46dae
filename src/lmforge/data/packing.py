"""Packing: best-fit-decreasing of encoded examples into blocks of ``data.max_length`` tokens.

A block is one training row holding several whole examples. Isolation between them comes from
``position_ids`` that restart at 0 for every example, read by transformers (5.x):

- sdpa / eager: ``masking_utils.find_packed_sequence_indices`` turns position ids into a
  block-diagonal causal mask, but ONLY when the 2D ``attention_mask`` is None and there is no KV
  cache. A model with ``config.use_cache=True`` creates a DynamicCache in its forward, so the check
  is skipped and a plain causal mask lets examples attend to each other. The packed collator
  therefore emits no ``attention_mask``, and the stages train with ``use_cache`` off.
- flash-attention: varlen kernels; the collator can pass ``cu_seq_lens_*``/``max_length_*``
  explicitly (transformers only infers them from position ids when the batch has one row).

The first token of every example gets label -100: a causal LM predicts ``labels[i+1]`` from
position ``i``, and the first token of example k+1 must not be predicted from the last token of
example k (an unpacked example never predicts its first token either).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field

from lmforge.config.constants import IGNORE_INDEX as IGNORE

log = logging.getLogger(__name__)


def bin_numbers(lengths, capacity: int):
    """Per item, the number of its bin (bins numbered as they open), best-fit-decreasing:
    longest items first, each into the fullest bin that still has room, ties in the input order
    (so the result is deterministic). A bin is kept as one integer ``room * stride + bin`` in a
    sorted list: the first key at or above ``length * stride`` is the fullest bin that fits."""
    import numpy as np

    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    if len(order) and lengths[order[0]] > capacity:
        raise ValueError(f"item {order[0]} has length {lengths[order[0]]} > block capacity "
                         f"{capacity}")
    stride = len(lengths) + 1
    out = np.empty(len(lengths), dtype=np.int64)
    free: list[int] = []  # sorted room * stride + bin
    opened = 0
    left, insort = bisect.bisect_left, bisect.insort
    for i, n in zip(order.tolist(), lengths[order].tolist()):
        at = left(free, n * stride)
        if at < len(free):
            room, b = divmod(free.pop(at), stride)
        else:
            room, b = capacity, opened
            opened += 1
        out[i] = b
        if room > n:
            insort(free, (room - n) * stride + b)
    return out


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Item indices grouped into bins of at most ``capacity`` (``bin_numbers``), each bin's
    items in the order they were placed."""
    import numpy as np

    numbers = bin_numbers(lengths, capacity)
    bins: list[list[int]] = [[] for _ in range(int(numbers.max()) + 1 if len(numbers) else 0)]
    for i in np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable").tolist():
        bins[numbers[i]].append(i)
    return bins


@dataclass
class PackStats:
    examples: int = 0
    blocks: int = 0
    tokens: int = 0
    split: int = 0  # over-long sequences cut into pieces
    fill: float = 0.0  # tokens / (blocks * max_length)
    extra: dict = field(default_factory=dict)


def pack_rows(input_ids: list[list[int]], labels: list[list[int]], max_length: int
              ) -> tuple[dict[str, list], PackStats]:
    """Pack encoded examples (lists) into rows with ``input_ids``, ``labels``, ``position_ids``:
    ``pack_arrays`` on lists."""
    from lmforge.data import ragged

    offsets, ids = ragged.from_lists(input_ids)
    _, flat_labels = ragged.from_lists(labels)
    (rows, *columns), stats = pack_arrays(offsets, ids, flat_labels, max_length)
    bounds = rows.tolist()
    return {k: [v[i:j].tolist() for i, j in zip(bounds, bounds[1:])]
            for k, v in zip(("input_ids", "labels", "position_ids"), columns)}, stats


def pack_arrays(offsets, ids, labels, max_length: int):
    """Packing on ragged arrays (``ragged.py``): over-long examples cut into block-sized
    pieces, pieces placed by ``bin_numbers`` (data order kept within a block), labels of
    each example's first token masked, positions restarting per example. Returns (row offsets, ids
    (int32, as ``Dataset.from_dict`` stores input_ids), labels, position_ids (int64)), and the
    PackStats."""
    import numpy as np

    lengths = np.diff(offsets)
    stats = PackStats(examples=len(lengths), split=int((lengths > max_length).sum()))
    pieces = -(-lengths // max_length)  # an empty example gives no piece
    owner = np.repeat(np.arange(len(lengths)), pieces)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    starts = offsets[:-1][owner] + k * max_length
    sizes = np.minimum(max_length, lengths[owner] - k * max_length)
    numbers = bin_numbers(sizes, max_length)
    order = np.argsort(numbers, kind="stable")  # block by block, the data order within a block
    sizes, starts = sizes[order], starts[order]
    ends = np.cumsum(sizes)
    total = int(ends[-1]) if len(ends) else 0
    out_starts = ends - sizes
    position_ids = np.arange(total) - np.repeat(out_starts, sizes)
    where = position_ids + np.repeat(starts, sizes)  # the source of every packed token
    out_labels = labels[where].astype(np.int64, copy=False)  # a copy already (fancy index)
    out_labels[out_starts] = IGNORE  # the first token of every example
    per_bin = np.bincount(numbers)
    row_offsets = np.concatenate([[0], ends])[np.concatenate([[0], np.cumsum(per_bin)])]
    stats.blocks, stats.tokens = len(per_bin), total
    stats.fill = stats.tokens / max(1, stats.blocks * max_length)
    return (row_offsets, ids[where].astype(np.int32, copy=False), out_labels, position_ids), \
        stats


def pack_dataset(ds, max_length: int, name: str = "train"):
    """A ``datasets.Dataset`` with input_ids/labels -> the packed Dataset (plus position_ids):
    the rows of ``pack_arrays``, with ``Dataset.from_dict``'s types."""
    import datasets
    import pyarrow as pa

    from lmforge.data import ragged

    offsets, ids = ragged.from_dataset(ds, "input_ids")
    label_offsets, labels = ragged.from_dataset(ds, "labels")
    if not (offsets == label_offsets).all():
        raise ValueError("input_ids and labels differ in length")
    (rows, *columns), stats = pack_arrays(offsets, ids, labels, max_length)
    log.info("packing %s: %d examples -> %d blocks of <= %d tokens (%.1f%% full%s)", name,
             stats.examples, stats.blocks, max_length, 100 * stats.fill,
             f", {stats.split} long sequences split" if stats.split else "")
    if not stats.blocks:
        return datasets.Dataset.from_dict({"input_ids": [], "labels": [], "position_ids": []}), \
            stats
    table = pa.table({k: ragged.to_arrow(rows, v) for k, v in
                      zip(("input_ids", "labels", "position_ids"), columns)})
    return datasets.Dataset(table, fingerprint=ragged.fingerprint(table)), stats


def segment_lengths(position_ids: list[int]) -> list[int]:
    """Lengths of the examples in one packed row (a new one starts wherever position is 0)."""
    lengths: list[int] = []
    for p in position_ids:
        if p == 0 or not lengths:
            lengths.append(0)
        lengths[-1] += 1
    return lengths


def isolation_error(model, lengths: tuple[int, int] = (6, 5)) -> float:
    """How much a packed example still sees its neighbour, relative to a plain causal mask:
    ~0 when packed position ids isolate examples in this model, ~1 when they are ignored.

    Three tiny forward passes (packed, alone, packed without restarting positions) on the model
    as it will train; catches architectures or attention kernels that ignore packed position ids.
    """
    import torch

    param = next(model.parameters())
    vocab = model.get_input_embeddings().weight.shape[0]
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randint(0, vocab, (1, n), generator=gen).to(param.device) for n in lengths)
    ids = torch.cat([a, b], dim=1)
    restart = torch.tensor([list(range(lengths[0])) + list(range(lengths[1]))],
                           device=param.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            packed = model(input_ids=ids, position_ids=restart, use_cache=False).logits
            alone = model(input_ids=b, use_cache=False).logits
            causal = model(input_ids=ids, use_cache=False).logits
    finally:
        model.train(was_training)
    tail = slice(lengths[0], None)
    leak = float((causal[0, tail] - alone[0]).float().abs().max())
    err = float((packed[0, tail] - alone[0]).float().abs().max())
    return err / leak if leak > 1e-6 else 0.0  # no measurable influence: nothing to leak
