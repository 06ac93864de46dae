"""Read rows from files: JSON (a list), JSONL, CSV, Parquet, or a saved ``datasets`` directory.

Every row comes with its location (``file:line`` for JSONL, ``file:row N`` otherwise) so a bad row
can be named precisely. Nothing here knows about formats or tokenizers.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from lmforge.errors import DataError

Row = tuple[str, dict[str, Any]]  # (location, record)


def _jsonl(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"is not valid UTF-8 ({exc.reason} at byte {exc.start})",
                                str(path), lineno) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"malformed JSON ({exc.msg}, column {exc.colno})",
                                str(path), lineno) from None
            if not isinstance(record, dict):
                raise DataError(f"expected a JSON object, got {type(record).__name__}",
                                str(path), lineno)
            yield f"{path}:{lineno}", record


def _json(path: Path) -> Iterator[Row]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"is not valid UTF-8 ({exc.reason})", str(path)) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON ({exc.msg})", str(path), exc.lineno) from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"data": [...]} style files
    if not isinstance(data, list):
        raise DataError("expected a JSON list of objects (or JSONL)", str(path))
    for i, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {type(record).__name__}",
                            str(path), i + 1)
        yield f"{path}:item {i + 1}", record


def _csv(path: Path) -> Iterator[Row]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for i, record in enumerate(csv.DictReader(handle)):
                yield f"{path}:{i + 2}", dict(record)  # +2: header is line 1
    except UnicodeDecodeError as exc:
        raise DataError(f"is not valid UTF-8 ({exc.reason})", str(path)) from None


def _table(path: Path) -> Iterator[Row]:
    import datasets

    if path.is_dir():
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
    else:
        ds = datasets.Dataset.from_parquet(str(path))
    for i, record in enumerate(ds):
        yield f"{path}:row {i + 1}", dict(record)


READERS = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _table}


def read_rows(path: str | Path) -> Iterator[Row]:
    p = Path(path)
    if not p.exists():
        raise DataError("not found", str(p), hint="check the path in data.train / data.eval "
                        "(relative paths are from the current directory)")
    if p.is_dir():
        return _table(p)
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise DataError(f"unsupported file type '{p.suffix}' (use {', '.join(READERS)}, or a "
                        "saved datasets directory)", str(p))
    return reader(p)
