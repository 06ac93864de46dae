"""The labelling rule of the encoder (``encode.py``): which tokens a trained character span covers,
and the label arrays of a chunk of texts.

A token is trained when its characters overlap a trained span (the rule
``return_assistant_tokens_mask`` uses), so the end-of-turn token inside the span is trained too.
The [first, last + 1) token range of each span is found

- by binary search over the offsets (``offset_ranges``; a linear scan, ``token_owners``, where a
  tokenizer's offsets are not ordered), or
- without the offsets as Python lists (``lookup_ranges``): the Rust ``Encoding`` is asked which
  token holds the span's first character and the character at its end (``char_to_token``), and
  the neighbours of the latter (``token_to_chars``). Under ordered offsets that is exactly what
  the binary search gives; where it cannot tell (a character no token holds, a zero-width token
  at the boundary, overlapping offsets), the offsets are read and searched.

``label_rows`` turns the ids and ranges of many texts into ``ragged.Rows`` (labels = ids inside
the trained ranges, ``IGNORE`` elsewhere) and the source | target split of each (the first token
of the last assistant turn), with array operations instead of a Python list per row. Labels are
final before any padding, and nothing masks a token by its id, so a pad == eos tokenizer keeps
EOS trained.
"""

from __future__ import annotations

import bisect
import itertools
from operator import itemgetter

import numpy as np

from lmforge.config.constants import IGNORE_INDEX as IGNORE
from lmforge.data.ragged import Rows

_START, _END = itemgetter(0), itemgetter(1)


def token_owners(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """For each token, the index of the span its characters overlap, or -1 (linear scan)."""
    owners, j = [], 0
    for start, end in offsets:
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        inside = j < len(spans) and start < spans[j][1] and end > spans[j][0]
        owners.append(j if inside else -1)
    return owners


def offset_ranges(offsets, spans, ordered: bool) -> list[tuple[int, int]]:
    """[first, last + 1) token range of each span: the tokens whose characters overlap it."""
    if ordered:  # tokens overlapping [s, e): end > s and start < e; lo= keeps them in order
        out, b = [], 0
        right, left = bisect.bisect_right, bisect.bisect_left
        for s, e in spans:
            a = right(offsets, s, b, key=_END)
            b = left(offsets, e, a, key=_START)
            out.append((a, b))
        return out
    owners = token_owners(offsets, spans)
    found: dict[int, tuple[int, int]] = {}
    for i, o in enumerate(owners):
        if o >= 0:
            found[o] = (found.get(o, (i, i))[0], i + 1)
    return [found.get(j, (0, 0)) for j in range(len(spans))]


def lookup_ranges(enc, spans, n: int) -> list[tuple[int, int]] | None:
    """``offset_ranges(enc.offsets, spans, True)`` from a few look-ups in the Rust ``Encoding``
    ``enc`` of ``n`` tokens; None where the look-ups cannot tell (the caller searches the
    offsets). With starts and ends non-decreasing: the first token whose end passes ``s`` is the
    first token holding character ``s`` (``char_to_token``); the first token starting at or
    after ``e`` is the one holding ``e`` if it starts there (and its predecessor starts before),
    else the next one if that starts at or after ``e``."""
    to_token, to_chars = enc.char_to_token, enc.token_to_chars
    out, b = [], 0
    for s, e in spans:
        first = to_token(s)
        if first is None:
            return None
        k = to_token(e)
        if k is None:  # no token holds e: every token starts before it, or we cannot tell
            if n and to_chars(n - 1)[0] >= e:
                return None
            end = n
        elif to_chars(k)[0] == e:
            if k and to_chars(k - 1)[0] >= e:
                return None
            end = k
        elif k + 1 == n or to_chars(k + 1)[0] >= e:
            end = k + 1
        else:
            return None
        a = first if first > b else b  # what the search from the previous range gives
        b = end if end > a else a
        out.append((a, b))
    return out


def label_rows(ids: list[list[int]], ranges: list[list[tuple[int, int]]], train_on: str
               ) -> tuple[Rows, np.ndarray]:
    """(Rows of the texts' ids and labels, split: per text the first token of the last
    assistant turn, or its length when there is none)."""
    n = len(ids)
    sizes = np.fromiter(map(len, ids), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    total = int(offsets[-1])
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=total)
    counts = np.fromiter(map(len, ranges), dtype=np.int64, count=n)
    pairs = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(ranges)),
                        dtype=np.int64, count=2 * int(counts.sum())).reshape(-1, 2)
    has = counts > 0
    last = np.zeros((n, 2), dtype=np.int64)
    last[has] = pairs[np.cumsum(counts)[has] - 1]
    split = np.where(last[:, 1] > last[:, 0], last[:, 0], sizes)
    if train_on == "all":
        return Rows(offsets, flat, flat.copy()), split
    if train_on == "last_assistant":
        pairs, counts = last[has], has.astype(np.int64)
    bounds = (pairs + np.repeat(offsets[:-1], counts)[:, None]).ravel()
    if (np.diff(bounds) >= 0).all():  # ranges in order (they are): alternate IGNORE / trained
        trained = np.repeat(np.arange(len(bounds) + 1) % 2 == 1,
                            np.diff(bounds, prepend=0, append=total))
    else:  # e.g. a span no token overlaps, found as (0, 0) by the linear scan
        starts, ends = bounds[0::2], bounds[1::2]
        keep = ends > starts
        edges = np.bincount(starts[keep], minlength=total + 1) - \
            np.bincount(ends[keep], minlength=total + 1)
        trained = np.cumsum(edges[:total]) > 0
    return Rows(offsets, flat, np.where(trained, flat, IGNORE)), split
