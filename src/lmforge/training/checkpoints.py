"""Atomic checkpoints on disk: a checkpoint directory exists only when it is complete.

transformers' Trainer writes straight into ``checkpoint-N``: a crash (kill -9, power loss, full
disk) mid-save leaves a directory that looks like a checkpoint, and ``get_last_checkpoint`` then
resumes from it and fails, or silently loads half a state. Here (the Trainer side is
training/saving.py, the one private hook that redirects the save is training/compat.py):

1. Each save goes into ``.partial-checkpoint-N/checkpoint-N``; every file is fsynced,
   ``lmforge_manifest.json`` (size + sha256 of every file) is written LAST (``write_manifest``),
   then the directory is renamed to ``checkpoint-N`` (``publish``: ``os.replace``, atomic on one
   filesystem).
2. ``latest_complete`` (what ``train.resume: auto`` uses) takes the newest ``checkpoint-N`` whose
   manifest verifies (sha256 of the one it picks; falling back to the next one if that fails);
   directories without a manifest or with a bad one are skipped with a warning.
3. ``rotate`` (``train.save_total_limit``) never deletes the newest complete checkpoint (resume)
   nor the best one (``state.best_model_checkpoint``, set by eval/training.py), nor anything
   incomplete; transformers' own deletion is off.
4. ``training_args.bin`` (a pickle) becomes ``training_args.json`` (``args_to_json``); resume
   never needed it.
A failed save (e.g. ENOSPC) removes its staging directory; earlier checkpoints are untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "lmforge_manifest.json"
STAGING = ".partial-"
_STEP = re.compile(r"^checkpoint-(\d+)$")
_CHUNK = 1 << 20

# test hook: seconds to sleep in the middle of a save (after the weights, before the manifest),
# so a test can kill the process while a checkpoint is half written
SLOW_SAVE_ENV = "LMFORGE_TEST_SLOW_SAVE"


def _digest(path: Path, sync: bool) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
        if sync:
            os.fsync(f.fileno())  # durable before the manifest says it is there
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem syncs directories
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_manifest(folder: str | Path, step: int | None = None, sync: bool = True) -> Path:
    """``lmforge_manifest.json``: size and sha256 of every file in ``folder`` (written last,
    through a temporary file and a rename, so it is never half written either)."""
    folder = Path(folder)
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _digest(p, sync)}
             for p in _files(folder)}
    data = {"format": 1, "step": step, "created": time.time(), "files": files}
    tmp = folder / (MANIFEST + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        if sync:
            os.fsync(f.fileno())
    os.replace(tmp, folder / MANIFEST)
    if sync:
        for d in {folder, *(p.parent for p in _files(folder))}:
            _fsync_dir(d)
    return folder / MANIFEST


_VERIFIED: dict[tuple, None] = {}  # deep checks passed: (file, size, mtime) of each file


def verify(folder: str | Path, deep: bool = True) -> str | None:
    """None when ``folder`` is a complete checkpoint; otherwise why not. ``deep`` also checks
    every sha256 (reads the whole checkpoint, once per process); without it only presence and
    sizes."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        return "no manifest (interrupted while saving, or not written by lmforge)"
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in [path, *_files(folder)])
    problem = _verify(folder, path, deep and key not in _VERIFIED)
    if problem is None and deep:
        _VERIFIED[key] = None
    return problem


def _verify(folder: Path, path: Path, deep: bool) -> str | None:
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest ({exc})"
    for name, info in files.items():
        p = folder / name
        if not p.is_file():
            return f"{name} is missing"
        if p.stat().st_size != info["size"]:
            return f"{name} has {p.stat().st_size} bytes, the manifest says {info['size']}"
        if deep and _digest(p, sync=False) != info["sha256"]:
            return f"{name} does not match its sha256 in the manifest"
    return None


def step_of(path: str | Path) -> int | None:
    m = _STEP.match(Path(path).name)
    return int(m.group(1)) if m else None


def checkpoint_dirs(out: str | Path) -> list[Path]:
    """``checkpoint-N`` directories of a run, oldest step first (complete or not)."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [p for p in out.iterdir() if p.is_dir() and step_of(p) is not None]
    return sorted(found, key=step_of)


def complete_checkpoints(out: str | Path, deep: bool = False) -> list[Path]:
    return [p for p in checkpoint_dirs(out) if verify(p, deep) is None]


def latest_complete(out: str | Path) -> str | None:
    """The newest checkpoint whose manifest verifies (sha256 included); incomplete or corrupt
    ones are skipped with a warning naming them."""
    for path in reversed(checkpoint_dirs(out)):
        problem = verify(path, deep=True)
        if problem is None:
            return str(path)
        log.warning("skipping %s: %s", path, problem)
    return None


def check_resume_path(path: str | Path) -> None:
    """An explicitly given checkpoint: its manifest must verify when it has one."""
    from lmforge.errors import ConfigError

    p = Path(path)
    if not (p / MANIFEST).is_file():
        log.warning("%s has no %s: cannot check that it is complete", p, MANIFEST)
        return
    problem = verify(p, deep=True)
    if problem:
        raise ConfigError(f"train.resume: checkpoint '{p}' is incomplete or corrupt: {problem}",
                          "resume from another checkpoint, or use train.resume: auto (the "
                          "newest complete one)")


def remove_stale_staging(out: str | Path) -> None:
    """Staging directories left by a crash during a save (never complete: delete them)."""
    out = Path(out)
    if out.is_dir():
        for p in out.iterdir():
            if p.is_dir() and p.name.startswith(STAGING):
                shutil.rmtree(p, ignore_errors=True)


def staging_dir(out: Path, name: str) -> Path:
    """Where checkpoint ``name`` is written before it is sealed and renamed into place."""
    return out / f"{STAGING}{name}"


def staged_save(out: Path, name: str, is_main: bool, barrier, write, finish) -> None:
    """The one protocol of a checkpoint save, for the Trainer stages (training/saving.py) and
    lmforge's own PPO loop (rl/state.py): the main process clears stale staging and creates
    ``.partial-<name>``; every process ``write(staging)``s its part (at least its RNG state); the
    main process ``finish(staging)``es (manifest, rename, rotation); a barrier between phases
    keeps the processes in step, and nobody goes on before the checkpoint is complete."""
    staging = staging_dir(out, name)
    if is_main:
        remove_stale_staging(out)  # left by a crash mid-save: never complete
        staging.mkdir(parents=True)
    barrier()
    write(staging)
    barrier()  # every process wrote its part
    if is_main:
        finish(staging)
    barrier()


def rotate(out: str | Path, limit: int | None, protect: list[str | None] = ()) -> list[Path]:
    """Delete the oldest complete checkpoints beyond ``limit``, never the newest complete one nor
    any in ``protect`` (the best one); incomplete ones are left alone. Returns the deleted."""
    if not limit or limit <= 0:
        return []
    complete = complete_checkpoints(out)
    if not complete:
        return []
    keep = {complete[-1].resolve()} | {Path(p).resolve() for p in protect if p}
    removable = [p for p in complete if p.resolve() not in keep]
    excess = len(complete) - max(limit, len(keep & {p.resolve() for p in complete}))
    deleted = []
    for p in removable[:max(excess, 0)]:
        log.info("deleting old checkpoint %s (train.save_total_limit=%d)", p, limit)
        _remove(p)
        deleted.append(p)
    return deleted


def _remove(path: Path) -> None:
    """Delete a checkpoint without ever showing a half-deleted one: renamed out of sight first."""
    doomed = path.parent / f"{STAGING}deleting-{path.name}"
    shutil.rmtree(doomed, ignore_errors=True)
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def publish(tmp: Path, final: Path) -> None:
    """Rename the finished ``tmp`` to ``final``; an existing ``final`` (the same step saved
    again) is moved aside first and deleted after."""
    old = None
    if final.exists():
        old = final.parent / f"{STAGING}old-{final.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def seal(tmp: Path, final: Path, step: int | None) -> None:
    """Finish a staged checkpoint whose files are all written: the manifest last, then the
    rename that makes ``final`` visible (every stage's checkpoints, PPO's included)."""
    time.sleep(float(os.environ.get(SLOW_SAVE_ENV) or 0))  # test hook: kill mid-save
    write_manifest(tmp, step)
    publish(tmp, final)


def args_to_json(folder: str | Path, args, **overrides) -> None:
    """Replace Trainer's pickled ``training_args.bin`` with ``training_args.json``."""
    from lmforge.utils.secrets import redact_tree

    folder = Path(folder)
    (folder / "training_args.bin").unlink(missing_ok=True)
    try:
        data = json.loads(args.to_json_string())
    except (TypeError, ValueError):
        data = {k: str(v) for k, v in vars(args).items()}
    data.update(overrides)
    (folder / "training_args.json").write_text(json.dumps(redact_tree(data), indent=1),
                                               encoding="utf-8")
