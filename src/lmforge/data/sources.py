"""Read rows from files: JSON (a list), JSONL, CSV, Parquet, plain text (``.txt``, data/txt.py), a
saved ``datasets`` directory, a plain directory holding such files, or a Hub dataset id already
in the local Hugging Face cache (data/hub.py).

Every row comes with its location (``file:line`` for JSON/JSONL/CSV, ``file:row N`` for tables) so
a bad row can be named precisely. A row that cannot be parsed is yielded as a ``DataError`` instead
of a record by ``iter_rows``, so the caller decides whether to stop or skip it
(``data.skip_invalid``); ``read_rows`` raises it. Problems
with a whole file (missing, unreadable, not a list) always raise. Nothing here knows about formats
or tokenizers.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from lmforge.data import hub
from lmforge.data.tables import is_saved_dataset, saved_split, table_rows
from lmforge.data.txt import txt_rows
from lmforge.errors import DataError

Row = tuple[str, "dict[str, Any] | DataError"]  # (location, record or the reason it is bad)
_NOT_FOUND_HINT = ("check the path in data.train / data.eval (relative paths are from the current "
                   "directory)")


def bad_row(where: str, reason: str, field: str | None = None) -> DataError:
    """A DataError for ``where`` = 'file:17' or 'file:row 3' (file and line kept apart)."""
    file, sep, line = where.rpartition(":")
    if not sep:
        return DataError(reason, where, field=field)
    return DataError(reason, file, int(line) if line.isdigit() else line, field)


def unencodable(value: Any) -> bool:
    """JSON escapes can spell lone surrogates (``"\\ud800"``): text no tokenizer accepts."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(unencodable(k) or unencodable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unencodable(v) for v in value)
    return False


# a lone surrogate can only come from a JSON escape \ud800-\udfff (decoded UTF-8 text holds
# none): lines without one skip the walk over every string of the record
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _record(where: str, value: Any, text: str | None = None) -> dict[str, Any] | DataError:
    if not isinstance(value, dict):
        return bad_row(where, f"expected a JSON object, got {type(value).__name__}")
    if text is not None and not _SURROGATE_ESCAPE.search(text):
        return value
    for key, item in value.items():
        if unencodable(key) or unencodable(item):
            return bad_row(where, "contains a lone surrogate escape (e.g. \\ud800): not valid "
                                  "Unicode text", str(key).encode("utf-8", "replace").decode())
    return value


def _jsonl(path: Path, plain: set | None = None) -> Iterator[Row]:
    """``plain`` (a set) receives the location of every line without ``<`` or a ``\\u003``
    escape: no string of its record can hold an ``<image>``-style placeholder."""
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            where = f"{path}:{lineno}"
            if plain is not None and b"<" not in raw and b"\\u003" not in raw:
                plain.add(where)
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield where, bad_row(where, f"is not valid UTF-8 ({exc.reason} at byte "
                                            f"{exc.start})")
                continue
            if not line.strip():
                continue
            try:
                yield where, _record(where, json.loads(line), line)
            except json.JSONDecodeError as exc:
                yield where, bad_row(where, f"malformed JSON ({exc.msg}, column {exc.colno})")


def _utf8_error(path: Path, exc: UnicodeDecodeError) -> DataError:
    """Name the line of the first invalid byte (a newline byte is never inside a UTF-8
    sequence, so decoding line by line finds it)."""
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as bad:
                return DataError(f"is not valid UTF-8 ({bad.reason} at byte {bad.start} of the "
                                 "line)", str(path), lineno)
    return DataError(f"is not valid UTF-8 ({exc.reason})", str(path))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _utf8_error(path, exc) from None


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _json_items(path: Path, text: str) -> Iterator[Row]:
    """Items of a top-level JSON list, each with the line it starts on (raw_decode walk). The
    list must be closed and its items separated by single commas, as JSON says: a file cut off
    before its ``]`` (a partial copy) or with a trailing comma is an error, not fewer rows."""
    decoder = json.JSONDecoder()
    i, n = text.index("[") + 1, len(text)
    line, seen, count, expect_item = 1, 0, 0, True
    while True:
        i = _skip_space(text, i)
        if i >= n:
            raise DataError(f"the JSON list is not closed: the file ends after {count} items "
                            "with no ']' (a partly copied file?)", str(path),
                            _line(text, len(text.rstrip()) - 1),
                            hint="restore the whole file (or convert it to JSONL, one object "
                            "per line)")
        if text[i] == "]" and (not expect_item or count == 0):
            break
        if text[i] in "],":
            what = "a trailing comma" if text[i] == "]" else "an empty item (two commas)"
            raise DataError(f"malformed JSON ({what} after item {count})", str(path),
                            _line(text, i), hint="JSON allows no empty items or trailing commas")
        if not expect_item:
            raise DataError(f"malformed JSON (expected ',' or ']' after item {count})", str(path),
                            _line(text, i))
        line += text.count("\n", seen, i)
        seen = i
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:  # cannot resynchronise inside a list: stop here
            raise DataError(f"malformed JSON ({exc.msg})", str(path),
                            _line(text, exc.pos)) from None
        count += 1
        where = f"{path}:{line}"
        yield where, _record(where, value)
        i = _skip_space(text, i)
        expect_item = i < n and text[i] == ","
        i += expect_item
    end = _skip_space(text, i + 1)
    if end < n:
        raise DataError("malformed JSON (text after the closing ']')", str(path), _line(text, end))


# keys of one record whose value is a list of objects (a single chat, not a list of records)
_RECORD_LISTS = {"messages", "conversations", "chosen", "rejected", "prompt", "completion",
                 "tools", "history"}


def _records_of(path: Path, data: dict) -> Iterator[Row]:
    """A top-level object: ``{"data": [...]}`` (one key holding the records), one record, or
    an error naming its keys when it wraps a list of records among other keys."""
    key, value = next(iter(data.items()), (None, None))
    if len(data) == 1 and isinstance(value, list) and key not in _RECORD_LISTS:
        for i, record in enumerate(value):
            where = f"{path}:{key}[{i}]"
            yield where, _record(where, record)
        return
    lists = [k for k, v in data.items() if isinstance(v, list) and v and isinstance(v[0], dict)
             and k not in _RECORD_LISTS and not any(r in v[0] for r in ("role", "from"))]
    if lists:
        raise DataError(f"expected a list of records; found an object with keys "
                        f"{', '.join(map(str, data))}", str(path),
                        hint=f"keep only the list (the value of '{lists[0]}') in the file, or "
                        "write the records as JSONL (one per line)")
    yield f"{path}:1", data  # a single object


def _json(path: Path) -> Iterator[Row]:
    text = _read_text(path)
    if text.lstrip()[:1] == "[":
        yield from _json_items(path, text)
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        first = text.lstrip()[:1]
        if first == "{" and exc.msg.startswith("Extra data"):
            yield from _jsonl(path)  # JSON lines saved with a .json name
            return
        raise DataError(f"malformed JSON ({exc.msg}, column {exc.colno})", str(path),
                        exc.lineno) from None
    if isinstance(data, dict):
        yield from _records_of(path, data)
        return
    raise DataError(f"expected a JSON list of objects (or JSONL), got {type(data).__name__}",
                    str(path))


def _csv(path: Path) -> Iterator[Row]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    start = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return
            start = reader.line_num + 1
            for values in reader:
                where = f"{path}:{start}"
                start = reader.line_num + 1
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    yield where, bad_row(where, f"has {len(values)} cells, the header has "
                                                f"{len(header)}")
                    continue
                yield where, dict(zip(header, values))
    except UnicodeDecodeError as exc:
        raise _utf8_error(path, exc) from None
    except csv.Error as exc:
        raise DataError(f"malformed CSV ({exc})", str(path), start) from None


READERS = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": table_rows,
           ".arrow": table_rows, ".txt": txt_rows}


def files_of(path: str | Path) -> list[Path]:
    """The data files a path stands for: itself, or the supported files in a plain directory."""
    p = Path(path)
    if not p.exists():
        if saved_split(path)[1]:
            return [saved_split(path)[0]]
        if hub.parse_id(str(path)):  # org/name[:split]: a Hub dataset in the local cache
            return hub.cached_files(str(path))
        raise DataError("not found", str(p), hint=_NOT_FOUND_HINT)
    if p.is_dir() and not is_saved_dataset(p):
        found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in READERS)
        if not found:
            raise DataError(f"directory has no data files ({', '.join(READERS)}) and is not a "
                            "saved datasets directory", str(p))
        return found
    return [p]


def iter_rows(path: str | Path, txt_split: str = "blank_line",
              plain: set | None = None) -> Iterator[Row]:
    """(location, record) for every row; a row that cannot be parsed comes as a DataError.
    ``.txt`` files give ``{"text": ...}`` rows split by ``txt_split`` (data/txt.py). ``plain``
    (a set) receives the locations of JSONL rows whose text holds no ``<`` (``_jsonl``)."""
    split = saved_split(path)[1]
    for p in files_of(path):
        if p.is_dir():
            yield from table_rows(p, split)
            continue
        reader = READERS.get(p.suffix.lower())
        if reader is None:
            raise DataError(f"unsupported file type '{p.suffix}' (use {', '.join(READERS)}, a "
                            "directory of such files, or a saved datasets directory)", str(p))
        yield from (txt_rows(p, txt_split) if reader is txt_rows else
                    _jsonl(p, plain) if reader is _jsonl else reader(p))


def read_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, record) for every row; the first unparseable row raises its DataError."""
    for where, row in iter_rows(path):
        if isinstance(row, DataError):
            raise row
        yield where, row
