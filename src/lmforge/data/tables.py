"""Rows of tables: Parquet files, processed Arrow files of the datasets cache, and directories
written by ``datasets.save_to_disk`` (a Dataset, or one split of a DatasetDict: ``dir:split``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from lmforge.errors import DataError


def is_saved_dataset(p: Path) -> bool:
    return p.is_dir() and any((p / n).is_file() for n in ("dataset_info.json", "state.json",
                                                          "dataset_dict.json"))


def saved_split(path: str | Path) -> tuple[Path, str | None]:
    """``saved_dir:split`` (a split of a saved DatasetDict) as (directory, split)."""
    base, sep, split = str(path).rpartition(":")
    if sep and split and not Path(path).exists() and is_saved_dataset(Path(base)):
        return Path(base), split
    return Path(path), None


def _split_of(ds, path: Path, split: str | None):
    """One split of a saved DatasetDict: ``split``, else train, else the only one."""
    names = list(ds)
    want = split or ("train" if "train" in ds or len(names) != 1 else names[0])
    if want not in ds:
        raise DataError(f"the saved DatasetDict has no split '{want}' (splits: "
                        f"{', '.join(names)})", str(path),
                        hint=f"name the split after a colon: {path}:{names[0]}")
    return ds[want]


def table_rows(path: Path, split: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    try:
        if path.suffix.lower() == ".arrow":  # a processed file of the datasets cache
            ds = datasets.Dataset.from_file(str(path))
        elif path.is_dir():
            ds = datasets.load_from_disk(str(path))
        else:
            ds = datasets.Dataset.from_parquet(str(path))
    except Exception as exc:  # pyarrow / datasets raise many types for unreadable files
        raise DataError(f"cannot be read as a dataset ({type(exc).__name__}: {exc})",
                        str(path)) from None
    if isinstance(ds, datasets.DatasetDict):
        ds = _split_of(ds, path, split)
    for i, record in enumerate(ds):
        yield f"{path}:row {i + 1}", dict(record)
