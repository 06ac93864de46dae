"""A ``lmforge train`` subprocess started from the web UI, and what it reports while it runs.

The run is the real command (``python -m lmforge train FILE``), so what the UI starts is exactly
what a person would run. Its output is read line by line on a thread; the trainer's log lines
(``step N: loss=... eval_loss=...``, written by lmforge.training.callbacks) give the progress and the
loss curve. COLUMNS is set wide so that rich does not wrap those lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

_STEP = re.compile(r"\bstep (\d+): (.*)$")
_VALUE = re.compile(r"(?<![\w.])((?:eval_)?loss)=([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))")
CURVES = ("loss", "eval_loss")


def parse_line(line: str) -> tuple[int, dict[str, float]] | None:
    """(step, {loss: .., eval_loss: ..}) from a trainer log line, or None."""
    m = _STEP.search(line)
    if not m:
        return None
    values = {k: float(v) for k, v in _VALUE.findall(m.group(2)) if k in CURVES}
    return (int(m.group(1)), values) if values else None


class TrainJob:
    """One training subprocess; ``snapshot()`` is safe to call from any thread."""

    def __init__(self, config_file: str | Path, max_steps: int | None = None,
                 cwd: str | Path | None = None, keep_lines: int = 400):
        self.config_file, self.max_steps = Path(config_file), max_steps
        self.cwd = cwd
        self.lines: deque[str] = deque(maxlen=keep_lines)
        self.points: list[tuple[int, str, float]] = []  # (step, curve, value)
        self.step = 0
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None

    def start(self) -> "TrainJob":
        env = dict(os.environ, COLUMNS="250", PYTHONUNBUFFERED="1", TERM="dumb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lmforge", "train", str(self.config_file)], cwd=self.cwd,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, encoding="utf-8", errors="replace", bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        if self.proc is None or self.proc.stdout is None:
            return
        for raw in self.proc.stdout:
            for line in raw.replace("\r", "\n").splitlines():
                if not line.strip():
                    continue
                parsed = parse_line(line)
                with self.lock:
                    self.lines.append(line.rstrip())
                    if parsed:
                        step, values = parsed
                        self.step = max(self.step, step)
                        self.points += [(step, k, v) for k, v in values.items()]
        self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        if self.proc is None or self.running or (self.reader and self.reader.is_alive()):
            return None
        return self.proc.returncode

    def stop(self) -> None:
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        if self.proc is not None:
            self.proc.wait(timeout=timeout)
        if self.reader is not None:
            self.reader.join(timeout=5)
        return self.returncode()

    def snapshot(self) -> dict:
        with self.lock:
            lines, points, step = list(self.lines), list(self.points), self.step
        code = self.returncode()
        if code is None:
            total = f"/{self.max_steps}" if self.max_steps and self.max_steps > 0 else ""
            status = f"running: step {step}{total}"
        else:
            status = "finished" if code == 0 else f"failed (exit code {code})"
            status += f" after step {step}"
        last = {curve: v for _, curve, v in points}
        if last:
            status += "; " + ", ".join(f"{k} {v:.4g}" for k, v in last.items())
        return {"status": status, "returncode": code, "step": step, "points": points,
                "log": "\n".join(lines)}
