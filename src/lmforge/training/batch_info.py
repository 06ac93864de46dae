"""Name the training rows inside a batch, for messages about faults (NaN loss, loss spikes).

A batch is only tensors: the sampler's indices are gone by the time a step fails. The rows are
found again by content: each batch row, with its trailing padding stripped, is hashed and looked
up in an index of the training dataset built the same way (once, on the first fault). The
pipeline keeps a ``where`` column (``file:line`` of the source row) on unpacked datasets, so the
message can say ``train.jsonl:17``; packed blocks are named by their index.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

QUICK_LIMIT = 200_000  # index at most this many rows for a warning (an error indexes any size)
SHOWN = 8


def _strip(ids: list[int], pad: int | None) -> tuple[int, ...]:
    end = len(ids)
    while pad is not None and end and ids[end - 1] == pad:
        end -= 1
    return tuple(ids[:end])


class BatchLocator:
    def __init__(self, trainer):
        self.trainer = trainer
        self.index: dict[int, list[int]] | None = None

    @property
    def dataset(self):
        return getattr(self.trainer, "train_dataset", None)

    def _pad(self) -> int | None:
        pad = getattr(getattr(self.trainer, "data_collator", None), "pad_token_id", None)
        if pad is None:
            pad = getattr(getattr(self.trainer, "processing_class", None), "pad_token_id", None)
        return pad

    def _build(self, thorough: bool) -> bool:
        ds = self.dataset
        names = getattr(ds, "column_names", None) or []
        if "input_ids" not in names:
            return False
        if self.index is not None:
            return True
        if len(ds) > QUICK_LIMIT and not thorough:
            return False
        pad, index = self._pad(), {}
        for start in range(0, len(ds), 4096):
            for i, ids in enumerate(ds[start:start + 4096]["input_ids"], start):
                index.setdefault(hash(_strip(list(ids), pad)), []).append(i)
        self.index = index
        return True

    def rows(self, input_ids, thorough: bool = False) -> list[int | None]:
        """Dataset row of every batch row (None when not found)."""
        if input_ids is None or not self._build(thorough):
            return []
        pad = self._pad()
        out = []
        for row in input_ids.tolist():
            found = self.index.get(hash(_strip(row, pad))) or [None]
            out.append(found[0])
        return out

    def _name(self, i: int | None) -> str:
        if i is None:
            return "a row not found in the training set"
        ds = self.dataset
        if "where" in ds.column_names:
            where = ds[i]["where"]
            if where:
                return where
        packed = "position_ids" in ds.column_names
        return f"train {'block' if packed else 'row'} {i}"

    def describe(self, batches: list, thorough: bool = False) -> str:
        """'train.jsonl:3, train.jsonl:9' for the micro-batches given (input_ids tensors)."""
        try:
            names = [self._name(i) for ids in batches for i in self.rows(ids, thorough)]
        except Exception as exc:  # describing must never hide the fault being reported
            log.debug("cannot locate the batch rows: %s", exc)
            names = []
        if not names:
            return f"{len(batches)} micro-batch(es) (rows not traceable)"
        more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
        return ", ".join(dict.fromkeys(names[:SHOWN])) + more
