"""Tokenizing and labelling the rendered texts of a batch for the encoder (``encode.py``), chunk by
chunk, on worker threads.

The Rust tokenizer's ``encode_batch`` releases the GIL, so each chunk is tokenized on a worker
thread while the encoder reads and renders the next chunks: on 2 cores the tokenizer runs beside
the Python work instead of after it, whatever ``TOKENIZERS_PARALLELISM`` says (that switch is the
tokenizer's own rayon pool). The worker also labels its chunk (``labels.py``): the token range of
each trained span is looked up in the Rust ``Encoding`` (no offsets as Python lists) and the
chunk's ids and labels become arrays (``ragged.Rows``), so the main thread only concatenates.

The ids and offsets are exactly those of ``tokenizer(text, add_special_tokens=False,
return_offsets_mapping=True)``: the first text and every ``VERIFY_EVERY``-th one are also
tokenized by that call, on the worker thread right after its chunk, and compared; one difference
makes the encoder take the tokenizer's own call for the whole batch. A sampled text whose offsets
are out of order labels every text by a linear scan. Without a Rust backend, or with
``threads=0``, every chunk goes through the tokenizer's own call.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor

from lmforge.data.labels import label_rows, lookup_ranges, offset_ranges
from lmforge.data.ragged import Rows
from lmforge.data.skeleton import VERIFY_EVERY

CHUNK = 512  # texts per encode_batch call: small enough to start the threads early
log = logging.getLogger("lmforge.data.encode")  # the encoder's log


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def reference(tokenizer, texts: list[str]) -> tuple[list, list]:
    """(ids, offsets) of texts from the tokenizer's own call (the contract)."""
    if not texts:
        return [], []
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return ([list(x) for x in enc["input_ids"]],
            [[tuple(o) for o in x] for x in enc["offset_mapping"]])


def ordered(offsets) -> bool:
    return all(offsets[i][0] <= offsets[i + 1][0] and offsets[i][1] <= offsets[i + 1][1]
               for i in range(len(offsets) - 1))


def _backend_encode(backend, texts: list[str]) -> tuple[list, list]:
    encs = backend.encode_batch(texts, add_special_tokens=False)  # the GIL is released here
    return [e.ids for e in encs], [e.offsets for e in encs]


def _lookups(encs, ids: list, spans: list) -> list:
    """Token ranges of every text's spans, assuming ordered offsets (``labels.lookup_ranges``,
    the offsets searched where the look-ups cannot tell)."""
    if not encs or not hasattr(encs[0], "char_to_token"):
        return [offset_ranges(e.offsets, s, True) for e, s in zip(encs, spans)]
    out = []
    for e, x, s in zip(encs, ids, spans):
        found = lookup_ranges(e, s, len(x))
        out.append(offset_ranges(e.offsets, s, True) if found is None else found)
    return out


def _encode_chunk(tokenizer, backend, texts: list[str], spans: list, sample: range,
                  train_on: str) -> tuple[Rows, object, bool, bool]:
    """(Rows, split, same, in_order) of a chunk from the Rust tokenizer alone: ``same`` whether
    its sampled texts get the same ids and offsets from the tokenizer's own call, ``in_order``
    whether their offsets are ordered (run on a worker thread: the first call, on the main
    thread, has already reset the backend's truncation/padding, so this one changes no state)."""
    encs = backend.encode_batch(texts, add_special_tokens=False)  # the GIL is released here
    ids = [e.ids for e in encs]
    want_ids, want_offsets = reference(tokenizer, [texts[j] for j in sample])
    same = all(ids[j] == want_ids[at] and encs[j].offsets == want_offsets[at]
               for at, j in enumerate(sample))
    in_order = all(ordered(encs[j].offsets) for j in sample)
    rows, split = label_rows(ids, _lookups(encs, ids, spans), train_on)
    return rows, split, same, in_order


def _reference_chunk(tokenizer, texts: list[str], spans: list, sample: range, train_on: str):
    ids, offsets = reference(tokenizer, texts)
    in_order = all(ordered(offsets[j]) for j in sample)
    rows, split = label_rows(ids, [offset_ranges(o, s, True) for o, s in zip(offsets, spans)],
                             train_on)
    return rows, split, True, in_order


class TokenStream:
    """Texts and their trained spans submitted in chunks, tokenized and labelled on ``threads``
    worker threads; ``result()`` gives the (Rows, split) of every text submitted, in order,
    checked against the tokenizer's own call on the sample."""

    def __init__(self, tokenizer, threads: int, train_on: str):
        self.tokenizer, self.train_on = tokenizer, train_on
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.backend = backend if threads > 0 else None
        self.pool = ThreadPoolExecutor(threads) if self.backend is not None else None
        self.parts: list[tuple[list[str], list, range, Future | tuple]] = []
        self.count = 0

    def submit(self, texts: list[str], spans: list) -> None:
        if not texts:
            return
        first = -(-self.count // VERIFY_EVERY) * VERIFY_EVERY
        sample = range(first - self.count, len(texts), VERIFY_EVERY)
        if self.pool is None:
            result = _reference_chunk(self.tokenizer, texts, spans, sample, self.train_on)
        else:
            if not self.count:  # the tokenizer's call resets any truncation/padding left on the
                reference(self.tokenizer, texts[:1])  # backend before the threads use it
            result = self.pool.submit(_encode_chunk, self.tokenizer, self.backend, texts,
                                      spans, sample, self.train_on)
        self.parts.append((texts, spans, sample, result))
        self.count += len(texts)

    def result(self) -> tuple[Rows, object]:
        """(Rows, split) of every text submitted (waits for the workers)."""
        import numpy as np

        done = [r.result() if isinstance(r, Future) else r for *_, r in self.parts]
        if not done:
            return Rows.empty(), np.zeros(0, dtype=np.int64)
        if all(same and in_order for _, _, same, in_order in done):
            return Rows.concat([d[0] for d in done]), np.concatenate([d[1] for d in done])
        texts = [t for part in self.parts for t in part[0]]
        spans = [s for part in self.parts for s in part[1]]
        if not all(same for _, _, same, _ in done):
            log.info("the Rust tokenizer alone differs from the tokenizer's call; using the "
                     "latter")
            ids, offsets = reference(self.tokenizer, texts)
            starts = np.cumsum([0] + [len(part[0]) for part in self.parts])
            in_order = all(ordered(offsets[start + j]) for start, part in zip(starts, self.parts)
                           for j in part[2])
        else:  # a sampled text's offsets are out of order: every text by a linear scan
            ids, offsets = _backend_encode(self.backend, texts) if self.backend is not None \
                else reference(self.tokenizer, texts)
            in_order = False
        return label_rows(ids, [offset_ranges(o, s, in_order) for o, s in zip(offsets, spans)],
                          self.train_on)

    def restart(self) -> None:
        """Forget every chunk submitted so far (the batch is rendered again)."""
        for *_, result in self.parts:
            if isinstance(result, Future):
                result.cancel()
        self.parts, self.count = [], 0

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
