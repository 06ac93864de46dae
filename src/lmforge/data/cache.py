"""Tokenized-dataset cache: a second run with the same inputs skips reading and tokenization.

The key hashes everything the encoded data depends on: each source file (path, size, mtime and a
content hash), the format and column mapping, the template text, the tokenizer (its serialized
vocabulary, merges and special tokens), the data settings, and the pipeline's own source code (a
changed encoder never serves stale data). Entries live in ``data.cache_dir`` or
``$LMFORGE_CACHE/datasets``; they are written to a temporary directory and renamed, under a lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from importlib import resources
from pathlib import Path

from lmforge.data.types import from_dict

log = logging.getLogger(__name__)
_HASH_LIMIT = 256 << 20
_CODE = ("encode.py", "render.py", "formats.py", "sources.py", "pipeline.py", "mixing.py",
         "registry.py", "plan.py", "user_class.py", "types.py", "skeleton.py", "encoders.py",
         "detect.py", "read.py", "txt.py", "preference.py", "prompts.py", "labels.py",
         "ragged.py", "batch_tokenize.py", "encode_chunks.py")


def cache_dir(cfg) -> Path:
    if cfg.data.cache_dir:
        return Path(cfg.data.cache_dir)
    from lmforge.utils.cachedir import cache_root

    return cache_root() / "datasets"


def file_digest(path: Path) -> str:
    """A content hash of the file (xxh3-128: ~10x faster than sha256; the dataset's source
    file is hashed before every build, cache or not, since the key is the run's data
    fingerprint)."""
    import xxhash  # a dependency of datasets

    h = xxhash.xxh3_128()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_fingerprint(path: str) -> list:
    """(name, size, content hash) of every file under ``path``: content, not mtime, so a touched but
    unchanged file still hits (files over 256 MiB: size and mtime)."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    if not p.exists():  # a Hub dataset id (its cached files) or saved_dir:split
        from lmforge.data.sources import files_of

        files = sorted(f for d in files_of(path) for f in ([d] if d.is_file() else d.rglob("*"))
                       if f.is_file())
    out = []
    for f in files:
        st = f.stat()  # very large files: size + mtime, not a full read every run
        out.append([str(f), st.st_size, st.st_mtime_ns if st.st_size > _HASH_LIMIT
                    else file_digest(f)])
    return out


def tokenizer_fingerprint(tokenizer) -> str:
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True,
                        default=str).encode())
    return h.hexdigest()


def code_fingerprint() -> str:
    h = hashlib.sha256()
    pkg = resources.files("lmforge.data")
    for name in _CODE:
        h.update(pkg.joinpath(name).read_bytes())
    return h.hexdigest()


def key(parts: dict) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def load(root: Path, k: str):
    """(train, eval, eval_examples, stats) from the cache, or None."""
    import datasets

    entry = root / k
    meta = entry / "meta.json"
    if not meta.is_file():
        return None
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        train = datasets.load_from_disk(str(entry / "train"))
        evals = datasets.load_from_disk(str(entry / "eval")) if info["has_eval"] else None
    except Exception as exc:  # a damaged entry is rebuilt, never trusted
        log.warning("ignoring damaged data cache entry %s (%s)", entry, exc)
        return None
    examples = [from_dict(d) for d in info["eval_examples"]] if info["eval_examples"] is not None \
        else None
    return train, evals, examples, info["stats"]


def _quietly(fn, *args):
    """Run without datasets' progress bars (they clutter the log and preview output)."""
    from datasets.utils import logging as ds_logging

    was = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        return fn(*args)
    finally:
        if was:
            ds_logging.enable_progress_bar()


def save(root: Path, k: str, train, evals, eval_examples, stats: dict) -> Path | None:
    from lmforge.utils.locks import file_lock

    entry = root / k
    try:
        root.mkdir(parents=True, exist_ok=True)
        with file_lock(root / f"{k}.lock"):
            if (entry / "meta.json").is_file():
                return entry
            tmp = root / f"{k}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            _quietly(train.save_to_disk, str(tmp / "train"))
            if evals is not None:
                _quietly(evals.save_to_disk, str(tmp / "eval"))
            info = {"has_eval": evals is not None, "stats": stats,
                    "eval_examples": None if eval_examples is None else
                    [e.to_dict() for e in eval_examples]}
            (tmp / "meta.json").write_text(json.dumps(info, ensure_ascii=False, default=str),
                                           encoding="utf-8")
            shutil.rmtree(entry, ignore_errors=True)
            os.replace(tmp, entry)
    except (OSError, AttributeError, KeyError) as exc:  # read-only or full disk, unsaveable types
        log.warning("could not write the data cache in %s (%s)", root, exc)
        return None
    return entry
