"""One source -> canonical examples: rows (``sources.py``), their format (``data.format``, or told
from the first rows by ``detect.py`` for ``auto``), media refused, then the format's converter.

A bad row raises, or with ``data.skip_invalid`` is counted; its hint names ``data.format`` (and
what auto picked) and ``data.columns``. A source whose every row was skipped is an error with
the count and the first reasons. Rows the stage cannot use (KTO rows labelled undesirable under
sft) are counted with their reason, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterator

from lmforge.data.batch_tokenize import CHUNK
from lmforge.data.detect import MEDIA_COLUMNS, detect, media_error
from lmforge.data.formats import converter
from lmforge.data.plan import SourcePlan
from lmforge.data.sources import iter_rows
from lmforge.data.types import Conversation
from lmforge.errors import DataError

log = logging.getLogger(__name__)
UNDESIRABLE = "KTO rows labelled undesirable (stage sft trains only the desirable answers)"
_REASONS = 3
_MEDIA = frozenset(MEDIA_COLUMNS)


def _hint(fmt: str, auto: bool) -> str:
    how = f"auto read this source as '{fmt}'" if auto else f"this source is read as '{fmt}'"
    return (f"fix the row; or check data.format ({how}) and map your column names with "
            "data.columns; or set data.skip_invalid: true to skip such rows")


def train_tool_results(example):
    """``data.train_on_tool_results``: the example's tool results flagged as trained spans."""
    if not isinstance(example, Conversation) or all(m["role"] != "tool" for m in example.messages):
        return example
    msgs = tuple(dict(m, train=True) if m["role"] == "tool" else m for m in example.messages)
    return dataclasses.replace(example, messages=msgs)


def read_source(cfg, plan: SourcePlan, counter: list[int], unused: dict | None = None) -> list:
    """Every valid example of one source; invalid rows raise or are counted in ``counter[0]``
    (skip_invalid); rows the stage does not use are counted by reason in ``unused``."""
    return [ex for chunk in read_chunks(cfg, plan, counter, unused) for ex in chunk]


def read_chunks(cfg, plan: SourcePlan, counter: list[int], unused: dict | None = None,
                size: int | None = None) -> Iterator[list]:
    """``read_source`` lazily: its examples in lists of ``size`` (so the encoder tokenizes a
    chunk while the next one is read); a row's error comes when the row is reached."""
    size = size or CHUNK
    plain: set[str] = set()  # rows with no '<' in their text: no placeholder to look for
    rows, fmt = iter_rows(plan.path, cfg.data.txt_split, plain), plan.format
    auto = fmt == "auto"
    if auto:
        fmt, rows = detect(rows, cfg.stage, plan.columns, plan.label)
        if fmt:
            log.info("%s: data.format auto: read as '%s'", plan.label, fmt)
    convert = converter(fmt, plan.columns if plan.check_columns else {}) if fmt else None
    out, skipped, not_used, reasons, total = [], 0, 0, [], 0
    for where, row in rows:
        if len(out) >= size:
            total += len(out)
            yield out
            out = []
        if isinstance(row, DataError):
            error = row
        elif where in plain and _MEDIA.isdisjoint(row):
            error = None  # what media_error finds in a row without media columns or '<'
            plain.discard(where)
        else:
            error = media_error(row, where, plan.columns)
        if error is None:
            try:
                example = convert(row, plan.columns, where, cfg.data.system)
            except DataError as exc:
                error = exc
        if error is not None:
            if error.hint == DataError.default_hint:
                error.hint = _hint(fmt or plan.format, auto)
            if not cfg.data.skip_invalid:
                raise error
            counter[0] += 1
            skipped += 1
            if len(reasons) < _REASONS:
                reasons.append(error.message)
            continue
        if cfg.stage == "sft" and getattr(example, "label", True) is False:
            not_used += 1
            continue
        out.append(train_tool_results(example) if cfg.data.train_on_tool_results else example)
    if not_used:
        log.warning("%s: %d %s are not used", plan.label, not_used, UNDESIRABLE)
        if unused is not None:
            unused[UNDESIRABLE] = unused.get(UNDESIRABLE, 0) + not_used
    if not out and not total and skipped:
        raise DataError(f"has no usable rows: all {skipped} rows are invalid and were skipped "
                        f"(data.skip_invalid: true); the first: {'; '.join(reasons)}",
                        plan.label, hint=_hint(fmt or plan.format, auto))
    if out:
        yield out
