"""``lmforge runs``: the run directories under a folder (those holding lmforge_config.yaml) with
their key settings and metrics (metrics.json), newest first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from lmforge.config.constants import RUN_CONFIG_FILE

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


def status(run: Path, metrics: dict) -> str:
    if metrics:
        return "done"
    return "incomplete" if any(run.glob("checkpoint-*")) else "started"


def describe(run: Path, root: Path) -> dict:
    cfg = _load_yaml(run / RUN_CONFIG_FILE)
    metrics = _load_json(run / "metrics.json")
    train = cfg.get("train") or {}
    row = {"run": str(run.relative_to(root)) if run != root else run.name,
           "path": str(run), "status": status(run, metrics), "stage": cfg.get("stage"),
           "model": (cfg.get("model") or {}).get("path"),
           "adapter": (cfg.get("adapter") or {}).get("type"),
           "learning_rate": train.get("learning_rate"),
           "modified": (run / "metrics.json" if metrics else run / RUN_CONFIG_FILE)
           .stat().st_mtime}
    row.update({k: metrics.get(k) for k in METRICS})
    return row


def list_runs(root: str | Path, sort: str = "modified") -> list[dict]:
    root = Path(root)
    rows = [describe(r, root) for r in find_runs(root)]
    reverse = sort == "modified"
    return sorted(rows, key=lambda r: (r.get(sort) is None, r.get(sort) or 0), reverse=reverse)
