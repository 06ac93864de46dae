"""``lmforge runs``: the run directories under a folder (those holding lmforge_config.yaml) with
their key settings and metrics (metrics.json), newest first.

A run's status comes from its ``run_state.json`` (utils/rundir.py): ``done``; ``failed`` with the
error; ``interrupted`` (Ctrl-C or a stopping signal, resumable from its checkpoints);
``running`` while the process that wrote ``running`` is alive (same pid AND same process start
time, so a reused pid does not count; a run on another host cannot be checked and says so); and
``died`` when that process is gone without recording an outcome (killed: SIGKILL, the OOM
killer). Runs made before the state file existed: ``done`` with metrics.json, ``incomplete`` with
checkpoints, else ``unknown``."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import yaml

from lmforge.config.constants import RUN_CONFIG_FILE
from lmforge.utils.rundir import STATE_FILE, process_start, read_state

MAX_DEPTH = 4  # sweeps nest runs one level deeper than plain runs; keep the walk bounded
METRICS = ("train_loss", "eval_loss", "global_step", "train_runtime", "world_size")


def find_runs(root: Path, max_depth: int = MAX_DEPTH) -> list[Path]:
    found = []
    base = len(root.parts)
    for here, dirs, files in os.walk(root):
        path = Path(here)
        dirs[:] = sorted(d for d in dirs if not d.startswith(("checkpoint-", ".", "logs",
                                                              "mlruns", "wandb")))
        if RUN_CONFIG_FILE in files:
            found.append(path)
        if len(path.parts) - base >= max_depth:
            dirs[:] = []
    return found


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def alive(state: dict) -> bool | None:
    """Is the process that recorded ``state`` still running? None: it ran on another host."""
    pid = state.get("pid")
    if state.get("host") not in (None, socket.gethostname()):
        return None
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    recorded, now = state.get("process_start"), process_start(pid)
    return recorded is None or now is None or recorded == now


def status(run: Path, metrics: dict, state: dict | None = None) -> tuple[str, str | None]:
    """(status, error or note) of a run directory (see the module docstring)."""
    state = read_state(run) if state is None else state
    recorded = state.get("state")
    if recorded in ("done", "failed", "interrupted"):
        return recorded, state.get("error")
    if recorded == "running":
        live = alive(state)
        if live:
            return "running", None
        if live is None:
            return "running", f"started on {state.get('host')}: cannot check from here"
        return "died", (f"process {state.get('pid')} ended without recording an outcome "
                        "(killed?)" + ("; resume from its checkpoints" if
                                       any(run.glob("checkpoint-*")) else ""))
    if metrics:
        return "done", None
    return ("incomplete" if any(run.glob("checkpoint-*")) else "unknown"), None


def describe(run: Path, root: Path) -> dict:
    cfg = _load_yaml(run / RUN_CONFIG_FILE)
    metrics = _load_json(run / "metrics.json")
    state = read_state(run)
    train = cfg.get("train") or {}
    state_now, error = status(run, metrics, state)
    newest = max((p for p in (run / "metrics.json", run / STATE_FILE, run / RUN_CONFIG_FILE)
                  if p.is_file()), key=lambda p: p.stat().st_mtime)
    row = {"run": str(run.relative_to(root)) if run != root else run.name,
           "path": str(run), "status": state_now, "error": error, "stage": cfg.get("stage"),
           "model": (cfg.get("model") or {}).get("path"),
           "adapter": (cfg.get("adapter") or {}).get("type"),
           "learning_rate": train.get("learning_rate"), "started": state.get("started"),
           "pid": state.get("pid") if state_now == "running" else None,
           "modified": newest.stat().st_mtime}
    row.update({k: metrics.get(k) for k in METRICS})
    return row


def list_runs(root: str | Path, sort: str = "modified") -> list[dict]:
    root = Path(root)
    rows = [describe(r, root) for r in find_runs(root)]
    reverse = sort == "modified"
    return sorted(rows, key=lambda r: (r.get(sort) is None, r.get(sort) or 0), reverse=reverse)
