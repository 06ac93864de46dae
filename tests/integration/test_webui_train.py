"""The web UI's Train tab behind the form: the values become a YAML run file, `lmforge train` runs
as a subprocess, and its progress and loss curve are read live from its log; the curve equals
the trainer's own log history."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import REPO
from lmforge.webui import form
from lmforge.webui.train import Runs


def test_train_tab_runs_lmforge_train_and_reads_the_loss_curve(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    values = {s.path: s.default for s in form.fields()} | {
        "model.path": "builtin:tiny-llama", "adapter.type": "full",
        "data.train": str(REPO / "examples/data/toy_train.jsonl"), "data.max_length": "64",
        "train.output_dir": str(out), "train.max_steps": "4", "train.logging_steps": "1",
        "train.save_steps": "4", "train.batch_size": "4", "train.learning_rate": "5e-3",
        "train.report_to": "[none]", "train.num_threads": "1"}
    runs = Runs()
    message, text, started = runs.start(values, "configs/ui.yaml")
    assert started, message
    assert message.startswith("ok: wrote configs/ui.yaml")
    assert yaml.safe_load((tmp_path / "configs/ui.yaml").read_text()) == yaml.safe_load(text)
    again = runs.start(values, "configs/other.yaml")
    assert again[2] is False and "already running" in again[0]

    seen_running = runs.job.snapshot()["status"].startswith("running: step")
    assert runs.job.wait(timeout=300) == 0, runs.job.snapshot()["log"][-3000:]
    snap = runs.job.snapshot()
    assert seen_running and snap["status"].startswith("finished after step 4")
    losses = [(step, v) for step, curve, v in snap["points"] if curve == "loss"]
    assert [s for s, _ in losses] == [1, 2, 3, 4]

    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    want = [(h["step"], h["loss"]) for h in state["log_history"] if "loss" in h]
    assert [s for s, _ in want] == [1, 2, 3, 4]
    for (_, got), (_, ref) in zip(losses, want):
        assert got == pytest.approx(ref, rel=1e-3)  # logged with 4 significant digits
    saved = yaml.safe_load((out / "lmforge_config.yaml").read_text())
    assert saved["train"]["max_steps"] == 4 and saved["adapter"]["type"] == "full"


def test_an_invalid_form_starts_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = Runs()
    values = {s.path: s.default for s in form.fields()} | {"model.path": "builtin:tiny-llama",
                                                          "train.batch_size": "0"}
    message, text, started = runs.start(values, "x.yaml")
    assert not started and runs.job is None and not (tmp_path / "x.yaml").exists()
    assert message == form.check(form.build_tree(values))[1]
    assert "train.batch_size" in message and "batch_size: 0" in text
    assert runs.stop() == "no training run is running"
