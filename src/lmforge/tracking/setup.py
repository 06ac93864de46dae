"""Tracker defaults set through the environment variables transformers' callbacks read.

Only variables the user did not set are touched; values set here by an earlier run of the same
process (a sweep runs trials in-process) are recomputed for the next run.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path

from lmforge.errors import require

log = logging.getLogger(__name__)

_OURS: dict = {}  # environment values this module set
RUN_UID = "lmforge.run_uid"  # MLflow tag that lets finish() find the run
EXPERIMENT = "lmforge"


def set_default(name: str, value: str) -> str:
    """Set ``name`` unless the user set it (a value we set earlier counts as unset)."""
    current = os.environ.get(name)
    if current is None or current == _OURS.get(name):
        os.environ[name] = value
        _OURS[name] = value
    return os.environ[name]


def mlflow_root(cfg) -> Path:
    """Where the default MLflow store lives: ``mlruns`` beside the output directory."""
    return Path(cfg.train.output_dir).resolve().parent / "mlruns"


def prepare_tensorboard(cfg) -> None:
    require("tensorboard", "tracking", "train.report_to: tensorboard")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(cfg.train.output_dir) / "logs")


def prepare_wandb(cfg) -> None:
    require("wandb", "tracking", "train.report_to: wandb")
    if not os.environ.get("WANDB_API_KEY") and "WANDB_MODE" not in os.environ:
        set_default("WANDB_MODE", "offline")
        log.info("wandb: no WANDB_API_KEY, logging offline (wandb sync %s/wandb later)",
                 cfg.train.output_dir)
    set_default("WANDB_DIR", str(Path(cfg.train.output_dir).resolve()))
    set_default("WANDB_PROJECT", EXPERIMENT)


def prepare_mlflow(cfg) -> None:
    """A local sqlite store by default; the experiment is created with its artifacts beside it
    (otherwise MLflow puts them in ./mlruns of the working directory)."""
    require("mlflow", "tracking", "train.report_to: mlflow")
    root = mlflow_root(cfg)
    uri = set_default("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    name = set_default("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    tags = user_tags()
    tags.update({RUN_UID: uuid.uuid4().hex, "lmforge.stage": cfg.stage,
                 "lmforge.output_dir": str(Path(cfg.train.output_dir).resolve())})
    os.environ["MLFLOW_TAGS"] = _OURS["MLFLOW_TAGS"] = json.dumps(tags)
    from lmforge.distributed import ranks

    if not ranks.is_main():
        return
    import mlflow

    if uri.startswith("sqlite:///"):
        root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)  # process-wide in mlflow: the next run may use another store
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(name) is None:
        artifacts = (root / "artifacts").as_uri() if uri == _OURS.get("MLFLOW_TRACKING_URI") \
            else None
        client.create_experiment(name, artifact_location=artifacts)


def user_tags() -> dict:
    """The user's MLFLOW_TAGS (remembered once we replace the variable with ours + theirs)."""
    current = os.environ.get("MLFLOW_TAGS")
    if current is None or current != _OURS.get("MLFLOW_TAGS"):
        try:
            _OURS["user_tags"] = json.loads(current or "{}")
        except json.JSONDecodeError:
            log.warning("MLFLOW_TAGS is not a JSON object; ignoring it")
            _OURS["user_tags"] = {}
    return dict(_OURS.get("user_tags") or {})


def run_uid() -> str | None:
    try:
        return json.loads(os.environ.get("MLFLOW_TAGS") or "{}").get(RUN_UID)
    except json.JSONDecodeError:
        return None


PREPARE = {"tensorboard": prepare_tensorboard, "wandb": prepare_wandb, "mlflow": prepare_mlflow}


def prepare(cfg, names: list[str]) -> None:
    for name in names:
        if name in PREPARE:
            PREPARE[name](cfg)
