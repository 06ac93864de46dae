"""Run-directory bookkeeping: the resolved config, library versions, data statistics, metrics,
and the run's state (``run_state.json``).

The state file is what ``lmforge runs`` reads to tell a live run from a dead one: it is written
``running`` with the process id, the host and the process's start time (so a reused pid is not
mistaken for the run) when the run directory is set up, and ``recorded_outcome`` (around
``stages.run``) rewrites it ``done``, ``failed`` (with the error) or ``interrupted``. A process
killed outright (SIGKILL, the OOM killer, a power cut) records nothing; ``lmforge runs`` then finds
its pid gone and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from lmforge.config.constants import RUN_CONFIG_FILE
from lmforge.config.loader import to_yaml
from lmforge.config.run import RunConfig

LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "tokenizers",
             "bitsandbytes", "deepspeed")


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("lmforge",) + LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[3]
    try:
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def write_run_files(cfg: RunConfig, out_dir: str | Path | None = None) -> Path:
    out = Path(out_dir or cfg.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if _rank() != 0:  # several processes: rank 0 writes the run files
        return out
    from lmforge.utils.secrets import redact_argv, redact_tree, redact_yaml

    (out / RUN_CONFIG_FILE).write_text(redact_yaml(to_yaml(cfg)), encoding="utf-8")
    env = {"versions": versions(), "git_commit": git_commit(), "argv": redact_argv(sys.argv),
           "platform": platform.platform()}
    (out / "env.json").write_text(json.dumps(redact_tree(env), indent=2), encoding="utf-8")
    mark_running(out)
    return out


STATE_FILE = "run_state.json"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None when unknown."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # the name, in parentheses, may hold spaces
    return fields[19] if len(fields) > 19 else None  # field 22 of proc(5): starttime


def read_state(out: str | Path) -> dict:
    try:
        data = json.loads((Path(out) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(out: Path, state: dict) -> None:
    tmp = out / f".{STATE_FILE}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(out / STATE_FILE)


def mark_running(out: str | Path) -> None:
    """``running``: this process (pid, host, its start time) is training into ``out``."""
    pid = os.getpid()
    _write_state(Path(out), {"state": "running", "pid": pid, "host": socket.gethostname(),
                             "process_start": process_start(pid),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def mark_outcome(out: str | Path, state: str, error: str | None = None) -> bool:
    """Record how the run this process started in ``out`` ended; False (nothing written) when
    ``out`` holds no run this process marked running (another run's directory, another rank)."""
    current = read_state(out)
    if current.get("state") != "running" or current.get("pid") != os.getpid():
        return False
    current.update(state=state, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if error:
        current["error"] = error
    _write_state(Path(out), current)
    return True


def _describe(exc: BaseException) -> str:
    from lmforge.errors import LmforgeError
    from lmforge.utils.secrets import redact

    if isinstance(exc, LmforgeError):
        text = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact(" ".join(text.split()))


@contextlib.contextmanager
def recorded_outcome(out: str | Path):
    """Around a run: ``done`` when it returns, ``interrupted`` on Ctrl-C / a stopping signal,
    ``failed`` with the error otherwise (the exception goes on unchanged)."""
    try:
        yield
    except BaseException as exc:
        # a stopping signal ends a run with exit code 128 + signal (training/faults.py)
        stopped = isinstance(exc, KeyboardInterrupt) or getattr(exc, "exit_code", 0) > 128
        mark_outcome(out, "interrupted" if stopped else "failed",
                     _describe(exc) if str(exc) else type(exc).__name__)
        raise
    else:
        mark_outcome(out, "done")


def _rank() -> int:
    from lmforge.utils.logs import rank

    return rank()


def write_metrics(out_dir: str | Path, metrics: dict) -> Path:
    path = Path(out_dir) / "metrics.json"
    clean = {k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()}
    path.write_text(json.dumps(clean, indent=2, sort_keys=True), encoding="utf-8")
    return path


def write_json(out_dir: str | Path, name: str, data: dict) -> Path:
    """A JSON file in the run directory (values that are not JSON are written as strings; only
    rank 0 writes in a multi-process run)."""
    path = Path(out_dir) / name
    if _rank() != 0:
        return path
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
    return path
