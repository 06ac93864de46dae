"""Plain ``.txt`` sources (pretraining corpora such as LLaMA-Factory's ``wiki_demo.txt``): rows
``{"text": ...}``, split by ``data.txt_split``:

- ``blank_line``: one document per block of lines separated by blank lines;
- ``line``: one document per non-empty line;
- ``file``: the whole file is one document.

Each row's location is the line its document starts on. Lines keep their own text (trailing
whitespace and line ends inside a block are kept, as written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lmforge.errors import DataError

TXT_SPLITS = ("blank_line", "line", "file")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"is not valid UTF-8 ({exc.reason} at byte {exc.start} of the "
                                "line)", str(path), lineno) from None


def txt_rows(path: Path, split: str = "blank_line") -> Iterator[tuple[str, dict]]:
    """(location, {"text": document}) for every document of a text file."""
    if split not in TXT_SPLITS:
        raise ValueError(f"txt split must be one of {TXT_SPLITS}, got {split!r}")
    block: list[str] = []
    start = 1
    for lineno, line in _lines(path):
        if split == "line":
            if line.strip():
                yield f"{path}:{lineno}", {"text": line.rstrip("\r\n")}
            continue
        if split == "blank_line" and not line.strip():
            if block:
                yield f"{path}:{start}", {"text": "".join(block).rstrip("\r\n")}
            block = []
            continue
        if not block:
            start = lineno
        block.append(line)
    if block and "".join(block).strip():
        yield f"{path}:{start}", {"text": "".join(block).rstrip("\r\n")}
