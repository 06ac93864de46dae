"""Hub dataset ids as sources, offline: ``data.train: org/name`` (or ``org/name:split``) reads a
dataset that is already in the local Hugging Face cache; nothing is downloaded.

Two caches are looked at, in order:

1. the Hub file cache (``huggingface_hub``'s, where ``datasets.load_dataset`` and ``hf download``
   put a repository's files): the files of the split (``train`` unless ``:split`` names another:
   a file whose path has the split name as a part, e.g. ``data/train-00000-of-00001.parquet``),
   read by lmforge's own readers, so errors name the cached file and line;
2. the ``datasets`` cache of processed Arrow files (``~/.cache/huggingface/datasets/org___name``).

A local path always wins over an id of the same spelling. An id in neither cache is an error that
says how to fetch it while online.
"""

from __future__ import annotations

import re
from pathlib import Path

from lmforge.errors import DataError

_ID = re.compile(r"^(?:hf://datasets/)?([A-Za-z0-9][\w.-]*/[\w.-]+)(?::([\w.-]+))?$")
_SPLITS = ("train", "validation", "valid", "dev", "test", "eval")
_META = {"dataset_info.json", "dataset_infos.json", "state.json", "dataset_dict.json"}
DATA_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".arrow", ".txt")


def parse_id(path: str) -> tuple[str, str | None] | None:
    """(repo id, split or None) when ``path`` is spelled like a Hub dataset id and is no local
    path; else None."""
    m = _ID.match(str(path))
    if m is None or Path(path).exists():
        return None
    return m.group(1), m.group(2)


def _fetch_hint(repo: str) -> str:
    return (f"lmforge works offline: fetch it once while online (python -c \"import datasets; "
            f"datasets.load_dataset('{repo}')\", or hf download --repo-type dataset {repo}), or "
            "check the path if you meant a local file (relative paths are from the current "
            "directory)")


def _has_split(rel: str, split: str) -> bool:
    return re.search(rf"(^|[/_.-]){re.escape(split)}([/_.-]|$)", rel.lower()) is not None


def _pick(files: list[Path], root: Path, split: str | None, where: str) -> list[Path]:
    rel = {f: f.relative_to(root).as_posix() for f in files}
    want = split or "train"
    chosen = [f for f in files if _has_split(rel[f], want)]
    if chosen:
        return chosen
    if split is None and not any(_has_split(r, s) for r in rel.values() for s in _SPLITS):
        return files  # no split names at all: the whole repository is the data
    raise DataError(f"the cached dataset has no split '{want}' (files: "
                    f"{', '.join(sorted(rel.values())[:8])})", where,
                    hint="name the split after a colon, e.g. data.train: org/name:test")


def _snapshot(repo: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, repo_type="dataset", local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None


def _arrow_cache(repo: str, split: str | None) -> list[Path]:
    """The newest processed Arrow files of ``split`` in the datasets cache (may be empty)."""
    import datasets.config

    org, name = repo.split("/")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    root = Path(datasets.config.HF_DATASETS_CACHE)
    dirs = [d for n in {name, snake} for d in root.glob(f"{org}___{n}/*/*/*") if d.is_dir()]
    for d in sorted(dirs, key=lambda d: d.stat().st_mtime, reverse=True):
        arrows = sorted(d.glob(f"*-{split or 'train'}.arrow")) or \
            sorted(d.glob(f"*-{split or 'train'}-*-of-*.arrow"))
        if arrows:
            return arrows
    return []


def cached_files(path: str) -> list[Path]:
    """The cached data files ``path`` (a Hub dataset id) stands for; a DataError if none."""
    parsed = parse_id(path)
    if parsed is None:
        raise DataError("not found", str(path))
    repo, split = parsed
    snapshot = _snapshot(repo)
    if snapshot is not None:
        files = sorted(f for f in snapshot.rglob("*") if f.is_file()
                       and f.suffix.lower() in DATA_SUFFIXES and f.name not in _META)
        if files:
            return _pick(files, snapshot, split, str(path))
    arrows = _arrow_cache(repo, split)
    if arrows:
        return arrows
    raise DataError(f"not found: no such local file, and the Hub dataset {repo} is not in the "
                    "local Hugging Face cache", str(path), hint=_fetch_hint(repo))


def source_exists(path: str) -> bool:
    """A local path, or a Hub dataset id with cached files."""
    if Path(path).exists():
        return True
    try:
        return bool(cached_files(path))
    except DataError:
        return False
