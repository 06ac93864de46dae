"""The output files of a distill run, written so that a crash or Ctrl-C loses nothing and a rerun
produces every record exactly once.

All rows of one record (kept ones in the output, rejected ones in ``<stem>.rejected.jsonl``) carry
``distill: {id, kept, rejected}``. A record is finished when both files hold exactly that many
rows for it; anything else (a run killed between or inside the two appends) is removed on resume
and the record is redone. Each append is one write, flushed and fsynced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lmforge.errors import DataError, LmforgeError


def side_paths(output: str | Path) -> tuple[Path, Path, Path]:
    """(rejected file, report file, lock file) next to the output."""
    out = Path(output)
    stem = out.name[: -len(out.suffix)] if out.suffix else out.name
    return (out.with_name(stem + ".rejected.jsonl"), out.with_name(stem + ".report.json"),
            out.with_name("." + out.name + ".lock"))


def _dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, default=str) + "\n"


def _scan(path: Path) -> tuple[list[tuple[str, str]], bool]:
    """[(key, line)] of a file we wrote, and whether torn rows (a write cut short) were found.

    A torn row is the last line without its newline, or, if a failed write was followed by
    others, a line that does not parse; it is dropped, and its record redone. A file whose first
    row is not ours is refused: resuming into someone else's data would corrupt it.
    """
    if not path.exists():
        return [], False
    lines = path.read_bytes().split(b"\n")
    torn = lines[-1] != b""  # a complete file ends with a newline
    rows = []
    for i, line in enumerate(lines[:-1]):  # the last item is b'' or the torn line
        if not line.strip():
            continue
        try:
            meta = json.loads(line)["distill"]
            rows.append((str(meta["id"]), line.decode("utf-8") + "\n"))
            int(meta["kept"]), int(meta["rejected"])
        except (ValueError, KeyError, TypeError):
            if not rows and not torn:
                raise DataError("is not a row written by lmforge distill (no 'distill' id); "
                                "refusing to resume into this file", str(path), i + 1,
                                hint="choose another distill.output, or move the file away"
                                ) from None
            torn = True
    return rows, torn


def _expected(line: str) -> tuple[int, int]:
    meta = json.loads(line)["distill"]
    return int(meta["kept"]), int(meta["rejected"])


class Store:
    def __init__(self, output: str | Path):
        self.output = Path(output)
        self.rejected, self.report, self._lock_path = side_paths(output)
        self._files: list = []
        self._lock = None
        self._broken = False
        self.dropped = 0

    def open(self) -> set[str]:
        """Lock the output, drop unfinished records, open for appending; return finished keys."""
        import fcntl

        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(self._lock_path, "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise LmforgeError(f"another lmforge distill is writing {self.output}",
                               "wait for it to finish, or choose another distill.output") from None
        done = self._repair()
        self._files = [open(p, "a", encoding="utf-8", newline="\n")
                       for p in (self.output, self.rejected)]
        return done

    def finished(self) -> tuple[set[str], dict]:
        """Keys of finished records, read only (no lock, no repair), and the scan for _repair."""
        (kept_rows, torn_a), (rej_rows, torn_b) = _scan(self.output), _scan(self.rejected)
        counts: dict[str, list[int]] = {}
        want: dict[str, tuple[int, int]] = {}
        for which, rows in ((0, kept_rows), (1, rej_rows)):
            for key, line in rows:
                counts.setdefault(key, [0, 0])[which] += 1
                want.setdefault(key, _expected(line))
        done = {k for k, c in counts.items() if tuple(c) == want[k]}
        return done, dict(rows=(kept_rows, rej_rows), torn=torn_a or torn_b, keys=len(counts))

    def _repair(self) -> set[str]:
        done, scan = self.finished()
        if scan["torn"] or len(done) != scan["keys"]:
            for path, rows in zip((self.output, self.rejected), scan["rows"]):
                if path.exists():
                    tmp = path.with_name(path.name + ".tmp")
                    tmp.write_text("".join(line for k, line in rows if k in done),
                                   encoding="utf-8")
                    os.replace(tmp, path)
        self.dropped = scan["keys"] - len(done)
        return done

    def write(self, kept: list[dict], rejected: list[dict]) -> None:
        """Append one record's rows: output first, then the rejected file; each flushed.

        After a failed write nothing more is written, so a torn row stays the last one."""
        if self._broken:
            raise LmforgeError(f"an earlier write to {self.output} failed; stopping")
        try:
            for handle, rows in zip(self._files, (kept, rejected)):
                if rows:
                    handle.write("".join(_dumps(r) for r in rows))
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            self._broken = True
            raise

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files = []
        if self._lock is not None:
            self._lock.close()
            self._lock = None  # the lock file stays: unlinking it would race with a waiter
