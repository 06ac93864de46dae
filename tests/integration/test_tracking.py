"""Trackers after a real (tiny) sft run: TensorBoard event files in output_dir/logs with the
per-step loss and the final metrics, and an MLflow run in the default local store (sqlite in
``mlruns`` beside the output directory) named after the run, holding the lmforge config as
params/artifact and the final metrics of metrics.json."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_jsonl


@pytest.fixture(scope="module")
def tracked_run(tiny_model_dir, tmp_path_factory):
    import os

    from lmforge.config import validate
    from lmforge.stages import run

    root = tmp_path_factory.mktemp("track")
    rows = [{"instruction": f"Name colour {i}.", "input": "", "output": ["red", "blue"][i % 2]}
            for i in range(16)]
    data = write_jsonl(root / "train.jsonl", rows)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME")}
    for key in saved:
        os.environ.pop(key, None)
    try:
        cfg = validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                        "data": {"train": str(data), "eval": 0.25, "format": "alpaca",
                                 "max_length": 48},
                        "train": {"output_dir": str(root / "runs" / "colours"), "max_steps": 4,
                                  "batch_size": 4, "logging_steps": 1, "eval_steps": 2,
                                  "num_threads": 1, "report_to": ["tensorboard", "mlflow"],
                                  "learning_rate": 3e-3}})
        result = run(cfg)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return result, root / "runs"


def test_tensorboard_event_files(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, _ = tracked_run
    logs = result.output_dir / "logs"
    events = sorted(logs.rglob("events.out.tfevents.*"))
    assert events, f"no event files under {logs}"
    scalars: dict[str, list] = {}
    for f in events:
        acc = EventAccumulator(str(f))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    assert len(scalars["train/loss"]) == 4
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert scalars["final/train_loss"] == [pytest.approx(metrics["train_loss"])]
    assert scalars["final/eval_loss"] == [pytest.approx(metrics["eval_loss"])]


def test_mlflow_run_in_local_store(tracked_run):
    import mlflow

    result, runs_dir = tracked_run
    db = runs_dir / "mlruns" / "mlflow.db"
    assert db.is_file()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("lmforge")
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 1
    run = found[0]
    assert run.info.run_name == "colours" and run.info.status == "FINISHED"
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert run.data.metrics["train_loss"] == pytest.approx(metrics["train_loss"])
    assert run.data.metrics["eval_loss"] == pytest.approx(metrics["eval_loss"])
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert run.data.params["lmforge.train.learning_rate"] == "0.003"
    assert run.data.params["lmforge.stage"] == "sft"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"lmforge_config.yaml", "metrics.json"} <= artifacts
    assert (runs_dir / "mlruns" / "artifacts").is_dir()  # not ./mlruns of the working dir
