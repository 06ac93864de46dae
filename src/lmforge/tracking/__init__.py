"""Experiment tracking: TensorBoard (default, offline), Weights & Biases, MLflow.

transformers' reporting callbacks log every step; this package gives them lmforge's defaults and
adds what they miss. ``start(cfg, args)`` runs before a Trainer is built: TensorBoard events go to
``output_dir/logs``; W&B runs offline when no API key is set; MLflow gets a local sqlite store
(``<output_dir parent>/mlruns/mlflow.db``) unless MLFLOW_TRACKING_URI says otherwise, and the run is
tagged so ``finish`` finds it. ``finish(trainer, metrics, out)`` (rank 0, after metrics.json) logs
the lmforge config and the final metrics to every tracker. ``runs`` lists run directories.
"""

from __future__ import annotations

from pathlib import Path


def run_name(cfg) -> str:
    """train.run_name, or the output directory's folder name."""
    return cfg.train.run_name or Path(cfg.train.output_dir).resolve().name


def trackers(report_to) -> list[str]:
    if report_to in (None, "none"):
        return []
    items = [report_to] if isinstance(report_to, str) else list(report_to)
    return [r for r in items if r != "none"]


def start(cfg, args) -> None:
    from lmforge.tracking.setup import prepare

    prepare(cfg, trackers(args.report_to))


def finish(trainer, metrics: dict, out: Path) -> None:
    from lmforge.tracking.final import log_final

    log_final(trainer, trackers(trainer.args.report_to), metrics, Path(out))
