"""Tokenizing the rendered texts of a batch for the encoder (``encode.py``), chunk by chunk.

The Rust tokenizer's ``encode_batch`` releases the GIL, so each chunk is tokenized on a worker
thread while the encoder renders the next chunk and labels the previous ones: on 2 cores the
tokenizer runs beside the Python work instead of after it, whatever ``TOKENIZERS_PARALLELISM``
says (that switch is the tokenizer's own rayon pool). The ids and offsets are exactly those of
``tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)``: the first text and
every ``VERIFY_EVERY``-th one are also tokenized by that call, on the worker thread right after
its chunk (so the check runs beside the main thread, not after it), and compared; one difference
(``Differs``) makes the encoder take the tokenizer's own call for the whole batch. Without a Rust
backend, or with ``threads=0``, every chunk goes through the tokenizer's own call.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

from lmforge.data.skeleton import VERIFY_EVERY

CHUNK = 512  # texts per encode_batch call: small enough to start the threads early


class Differs(Exception):
    """The Rust tokenizer alone gave other ids/offsets than the tokenizer's call."""


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


def _backend_encode(backend, texts: list[str]) -> tuple[list, list]:
    encs = backend.encode_batch(texts, add_special_tokens=False)  # the GIL is released here
    return [e.ids for e in encs], [e.offsets for e in encs]


def _encode_checked(tokenizer, backend, texts: list[str], sample: range) -> tuple[list, list,
                                                                                  bool]:
    """(ids, offsets) of a chunk from the Rust tokenizer alone, and whether its sampled texts
    get the same from the tokenizer's own call (run on the worker thread: the first call, on
    the main thread, has already reset the backend's truncation/padding, so this one changes
    no state)."""
    ids, offsets = _backend_encode(backend, texts)
    want_ids, want_offsets = reference(tokenizer, [texts[j] for j in sample])
    same = all(ids[j] == want_ids[at] and offsets[j] == want_offsets[at]
               for at, j in enumerate(sample))
    return ids, offsets, same


def ordered(offsets) -> bool:
    return all(offsets[i][0] <= offsets[i + 1][0] and offsets[i][1] <= offsets[i + 1][1]
               for i in range(len(offsets) - 1))


class TokenStream:
    """Texts submitted in chunks, tokenized on ``threads`` worker threads; ``take(k)`` gives
    the (ids, offsets) of chunk k (``done(k)``: without waiting), ``verify()`` checks the sample
    against the tokenizer's own call, ``chunks()`` gives every chunk, checked. ``ordered`` is
    False once a sampled text (the first and every ``VERIFY_EVERY``-th) has offsets out of
    order (the encoder then scans linearly)."""

    def __init__(self, tokenizer, threads: int):
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.backend = backend if threads > 0 else None
        self.pool = ThreadPoolExecutor(threads) if self.backend is not None else None
        self.parts: list[tuple[list[str], Future | tuple, range]] = []
        self.count = 0
        self.ordered = True

    def submit(self, texts: list[str]) -> None:
        if not texts:
            return
        first = -(-self.count // VERIFY_EVERY) * VERIFY_EVERY
        sample = range(first - self.count, len(texts), VERIFY_EVERY)
        if self.pool is None:
            self.parts.append((texts, reference(self.tokenizer, texts), sample))
        else:
            if not self.count:  # the tokenizer's call resets any truncation/padding left on the
                reference(self.tokenizer, texts[:1])  # backend before the threads use it
            self.parts.append((texts, self.pool.submit(_encode_checked, self.tokenizer,
                                                       self.backend, texts, sample), sample))
        self.count += len(texts)

    def done(self, k: int) -> bool:
        """Whether chunk ``k`` is tokenized (taking it would not wait)."""
        result = self.parts[k][1]
        return not isinstance(result, Future) or result.done()

    def take(self, k: int) -> tuple[list, list]:
        """(ids, offsets) of chunk ``k`` (waits for it), not yet checked (``verify``)."""
        _, result, sample = self.parts[k]
        ids, offsets = (result.result() if isinstance(result, Future) else result)[:2]
        self.ordered = self.ordered and all(ordered(offsets[j]) for j in sample)
        return ids, offsets

    def verify(self) -> None:
        """Raise Differs unless every sampled text's Rust ids/offsets equal the tokenizer's own
        call (compared on the worker threads; waits for every chunk)."""
        for _, result, _ in self.parts:
            if isinstance(result, Future) and not result.result()[2]:
                raise Differs()

    def chunks(self):
        """(ids, offsets) of each chunk, in order; raises Differs."""
        self.verify()
        for k in range(len(self.parts)):
            yield self.take(k)

    def everything(self) -> tuple[list, list]:
        """(ids, offsets) of every text submitted."""
        ids, offsets = [], []
        for a, b in self.chunks():
            ids += a
            offsets += b
        return ids, offsets

    def by_reference(self) -> tuple[list, list]:
        """Every text through the tokenizer's own call (after a ``Differs``)."""
        texts = [t for part in self.parts for t in part[0]]
        self.close()
        self.parts, self.count, self.ordered = [], 0, True
        self.submit(texts)
        return self.everything()

    def restart(self) -> None:
        """Forget every chunk submitted so far (the batch is rendered again)."""
        for _, result, _ in self.parts:
            if isinstance(result, Future):
                result.cancel()
        self.parts, self.count, self.ordered = [], 0, True

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
