"""After training (rank 0): the lmforge config and the final metrics (metrics.json) go to each
tracker. transformers' callbacks log TrainingArguments and the per-step values but neither our
config nor metrics computed after ``train()`` (final eval, token rate, ...)."""

from __future__ import annotations

import logging
from pathlib import Path

from lmforge.config.constants import RUN_CONFIG_FILE

log = logging.getLogger(__name__)

ARTIFACTS = (RUN_CONFIG_FILE, "metrics.json", "loss.png", "data_stats.json")


def numbers(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def flat_config(out: Path) -> dict[str, str]:
    """The run's lmforge_config.yaml as ``dotted.key -> value`` strings."""
    import yaml

    path = out / RUN_CONFIG_FILE
    if not path.is_file():
        return {}
    tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    flat: dict[str, str] = {}

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = str(node)

    walk(tree, "")
    return flat


def log_tensorboard(trainer, metrics: dict, out: Path) -> None:
    import os

    from torch.utils.tensorboard import SummaryWriter

    logdir = os.environ.get("TENSORBOARD_LOGGING_DIR") or str(out / "logs")
    writer = SummaryWriter(log_dir=logdir)
    try:
        config = out / RUN_CONFIG_FILE
        if config.is_file():
            text = config.read_text(encoding="utf-8")
            writer.add_text("lmforge_config", "```yaml\n" + text + "\n```", 0)
        step = trainer.state.global_step
        for key, value in numbers(metrics).items():
            writer.add_scalar(f"final/{key}", value, step)
    finally:
        writer.close()


def log_mlflow(trainer, metrics: dict, out: Path) -> None:
    import os
    import time

    import mlflow
    from mlflow.entities import Metric, Param

    from lmforge.tracking.setup import EXPERIMENT, RUN_UID, run_uid

    uid, client = run_uid(), mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME")
                                               or EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{RUN_UID}` = '{uid}'",
                              max_results=1) if uid and experiment else []
    if not runs:
        log.warning("mlflow: the run of %s was not found; final metrics not logged", out)
        return
    run_id, logged = runs[0].info.run_id, set(runs[0].data.params)
    now, step = int(time.time() * 1000), trainer.state.global_step
    values = [Metric(k, v, now, step) for k, v in numbers(metrics).items()]
    params = [Param(f"lmforge.{k}", v[:500]) for k, v in flat_config(out).items()
              if f"lmforge.{k}" not in logged]
    for i in range(0, max(len(values), len(params)), 100):  # MLflow's batch limit
        client.log_batch(run_id, metrics=values[i:i + 100], params=params[i:i + 100])
    for name in ARTIFACTS:
        if (out / name).is_file():
            client.log_artifact(run_id, str(out / name))


def log_wandb(trainer, metrics: dict, out: Path) -> None:
    import wandb

    if wandb.run is None:
        return
    wandb.run.summary.update(numbers(metrics))
    wandb.config.update({"lmforge": flat_config(out)}, allow_val_change=True)
    wandb.finish()


LOGGERS = {"tensorboard": log_tensorboard, "mlflow": log_mlflow, "wandb": log_wandb}


def log_final(trainer, names: list[str], metrics: dict, out: Path) -> None:
    """Never fails the run: a tracker problem is a warning (metrics.json is already written)."""
    for name in names:
        fn = LOGGERS.get(name)
        if fn is None:
            continue
        try:
            fn(trainer, metrics, out)
        except Exception as exc:  # noqa: BLE001 - tracking must not lose a finished run
            log.warning("%s: could not log the final metrics (%s)", name, exc)
