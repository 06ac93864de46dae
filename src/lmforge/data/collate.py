"""Batch collation: padded batches of examples (PadCollator) and packed blocks (PackedCollator).

Padded batches right-pad ids with the pad token and labels with -100 and carry an attention mask;
packed rows carry position ids instead (see data/packing.py for why there must be no mask).
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.data.encode import IGNORE


@dataclass
class PadCollator:
    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        ids, labels, mask = [], [], []
        for f in features:
            n = len(f["input_ids"])
            pad = longest - n
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(f["labels"]) + [IGNORE] * pad)
            mask.append([1] * n + [0] * pad)
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask)}


@dataclass
class PackedCollator:
    """Rows from ``packing.pack_rows`` / ``pack_dataset`` (one row per block): pads rows to the longest block with
    a pad segment of its own (positions restart at 0, labels -100) and emits NO attention_mask,
    so transformers derives the block-diagonal mask from ``position_ids`` (see data/packing.py).
    ``flash_varlen`` adds the cumulative sequence lengths flash-attention's varlen kernels use:
    transformers infers them from position ids only for a single-row batch."""

    pad_token_id: int
    flash_varlen: bool = False

    def __call__(self, features: list[dict]) -> dict:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        ids, labels, pos = [], [], []
        for f in features:
            pad = longest - len(f["input_ids"])
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(f["labels"]) + [IGNORE] * pad)
            pos.append(list(f["position_ids"]) + list(range(pad)))
        batch = {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                 "position_ids": torch.tensor(pos)}
        if self.flash_varlen:
            batch.update(varlen_kwargs(pos))
        return batch


def varlen_kwargs(position_ids: list[list[int]]) -> dict:
    """``cu_seq_lens_q/k`` and ``max_length_q/k`` over the flattened batch (flash-attention)."""
    import torch

    from lmforge.data.packing import segment_lengths

    lengths = [n for row in position_ids for n in segment_lengths(row)]
    cu = torch.tensor([0] + lengths, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    longest = max(lengths)
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest,
            "max_length_k": longest}
