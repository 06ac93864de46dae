"""Run-directory bookkeeping: the resolved config, library versions, data statistics, metrics."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
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
    return out


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
