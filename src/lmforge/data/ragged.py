"""Ragged integer columns as (offsets, flat values) numpy arrays: what Arrow list columns are,
so encoded datasets go to packing and statistics without a Python list per row.

``from_lists`` / ``from_dataset`` read them, ``to_arrow`` writes an Arrow ``ListArray``;
``row_sums`` adds up a per-token quantity per row (empty rows give 0). ``Rows`` holds what the
encoder makes (ids and labels of the same rows), cut, taken and concatenated without a Python
list per row.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


def from_lists(rows, dtype: str = "int64") -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64 [n + 1], values) of a list of integer lists."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)), out=offsets[1:])
    values = np.fromiter(itertools.chain.from_iterable(rows), dtype=dtype,
                         count=int(offsets[-1]))
    return offsets, values


def from_arrow(column) -> tuple[np.ndarray, np.ndarray]:
    """(offsets int64, values) of an Arrow list column (ChunkedArray or ListArray)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not len(column):  # also an empty column of no type (Dataset.from_dict of empty lists)
        return np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if column.null_count:
        raise ValueError("a list column with missing rows")
    offsets = column.offsets.to_numpy().astype(np.int64)
    values = column.values.to_numpy(zero_copy_only=False)
    return offsets - offsets[0], values[offsets[0]:offsets[-1]]


def from_dataset(ds, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a ``datasets.Dataset`` list column (its row order and selection)."""
    return from_arrow(ds.with_format("arrow")[name])


def to_arrow(offsets: np.ndarray, values: np.ndarray):
    import pyarrow as pa

    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))


def row_sums(offsets: np.ndarray, per_token: np.ndarray) -> np.ndarray:
    """Per row, the sum of ``per_token`` over its tokens (int64)."""
    padded = np.append(per_token, np.zeros(1, dtype=per_token.dtype))  # rows may start at the end
    sums = np.add.reduceat(padded, offsets[:-1], dtype=np.int64)
    sums[offsets[1:] == offsets[:-1]] = 0  # reduceat gives an empty row its next element
    return sums


def fingerprint(table) -> str:
    """A content hash of an Arrow table (what ``datasets`` would otherwise compute by pickling
    the whole table: ~0.1 s for the preprocessing benchmark's 20,000 rows)."""
    import xxhash  # a dependency of datasets

    h = xxhash.xxh64(str(table.schema).encode())
    for column in table.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(memoryview(buf))
    return h.hexdigest()


def gather(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of the rows ``values[starts[r]:starts[r] + sizes[r]]``."""
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    where = np.arange(offsets[-1], dtype=np.int64) + np.repeat(starts - offsets[:-1], sizes)
    return offsets, values[where]


@dataclass
class Rows:
    """Token rows as ragged arrays: row r is ``ids[offsets[r]:offsets[r + 1]]`` with the labels
    ``labels[offsets[r]:offsets[r + 1]]`` (ids and labels int64)."""

    offsets: np.ndarray
    ids: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def empty(cls) -> "Rows":
        return cls(np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                   np.zeros(0, dtype=np.int64))

    @classmethod
    def from_lists(cls, ids: list, labels: list) -> "Rows":
        offsets, flat_ids = from_lists(ids)
        label_offsets, flat_labels = from_lists(labels)
        if not (offsets == label_offsets).all():
            raise ValueError("input_ids and labels differ in length")
        return cls(offsets, flat_ids, flat_labels)

    @classmethod
    def concat(cls, parts: list["Rows"]) -> "Rows":
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        sizes = np.concatenate([np.diff(p.offsets) for p in parts])
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return cls(offsets, np.concatenate([p.ids for p in parts]),
                   np.concatenate([p.labels for p in parts]))

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, r: int) -> tuple[list[int], list[int]]:
        a, b = self.offsets[r], self.offsets[r + 1]
        return self.ids[a:b].tolist(), self.labels[a:b].tolist()

    def cut(self, lo: np.ndarray, hi: np.ndarray) -> "Rows":
        """Row r keeps its tokens ``lo[r]:hi[r]``."""
        if not (lo.any() or (hi != self.lengths()).any()):
            return self
        return self._gather(self.offsets[:-1] + lo, hi - lo)

    def take(self, rows: np.ndarray) -> "Rows":
        """The rows ``rows`` (indices, in that order)."""
        if len(rows) == len(self) and (rows == np.arange(len(self))).all():
            return self
        return self._gather(self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows])

    def _gather(self, starts: np.ndarray, sizes: np.ndarray) -> "Rows":
        offsets, ids = gather(self.ids, starts, sizes)
        return Rows(offsets, ids, gather(self.labels, starts, sizes)[1])
