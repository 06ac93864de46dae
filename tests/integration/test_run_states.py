"""``lmforge runs`` tells done / running / failed (with the error) / interrupted / died apart
(run_state.json, utils/rundir.py + tracking/runs.py) instead of showing ``started`` forever."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from transformers import TrainerCallback

from lmforge import stages
from lmforge.tracking.runs import list_runs
from lmforge.utils import rundir
from tests.conftest import run_cli, write_jsonl


def _cfg(tmp_path, name: str, rows: list[dict] | None = None, **train):
    from lmforge.config import validate

    data = write_jsonl(tmp_path / f"{name}.jsonl", rows or [
        {"instruction": f"name a colour {i}", "output": "red green"} for i in range(8)])
    return validate({"stage": "sft", "model": {"path": "builtin:tiny-llama"},
                     "adapter": {"type": "full"},
                     "data": {"train": str(data), "max_length": 64},
                     "train": {"output_dir": str(tmp_path / "runs" / name), "max_steps": 2,
                               "save_steps": 2, "batch_size": 4, "report_to": ["none"],
                               "num_threads": 1, **train}})


class _Boom(TrainerCallback):
    def __init__(self, exc: BaseException):
        self.exc = exc

    def on_step_end(self, args, state, control, **kwargs):
        raise self.exc


def _rows(tmp_path) -> dict:
    return {r["run"]: r for r in list_runs(tmp_path / "runs")}


def test_done_failed_and_interrupted_runs(tmp_path):
    stages.run(_cfg(tmp_path, "ok"))
    with pytest.raises(RuntimeError, match="disk on fire"):
        stages.run(_cfg(tmp_path, "broken"), callbacks=[_Boom(RuntimeError("disk on fire"))])
    with pytest.raises(KeyboardInterrupt):
        stages.run(_cfg(tmp_path, "stopped"), callbacks=[_Boom(KeyboardInterrupt())])
    rows = _rows(tmp_path)
    assert rows["ok"]["status"] == "done" and rows["ok"]["error"] is None
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["error"] == "RuntimeError: disk on fire"
    assert rows["stopped"]["status"] == "interrupted"
    state = rundir.read_state(tmp_path / "runs" / "ok")
    assert state["pid"] == __import__("os").getpid() and state["started"] and state["finished"]


def test_refused_rerun_does_not_touch_the_finished_run(tmp_path):
    """A second run refused by output_dir.prepare never wrote 'running': the first stays done."""
    from lmforge.errors import ConfigError

    stages.run(_cfg(tmp_path, "ok"))
    with pytest.raises(ConfigError):
        stages.run(_cfg(tmp_path, "ok"))
    assert _rows(tmp_path)["ok"]["status"] == "done"


def test_running_while_the_process_lives_then_died(tmp_path):
    run = tmp_path / "runs" / "live"
    run.mkdir(parents=True)
    (run / "lmforge_config.yaml").write_text("stage: sft\nmodel: {path: builtin:tiny-llama}\n")
    code = ("import sys, time; from lmforge.utils.rundir import mark_running; "
            "mark_running(sys.argv[1]); print('ready', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        row = _rows(tmp_path)["live"]
        assert row["status"] == "running" and row["pid"] == proc.pid
        shown = run_cli("runs", str(tmp_path / "runs"), timeout=120)
        assert shown.returncode == 0 and "running" in shown.stdout
    finally:
        proc.kill()
        proc.wait()
    row = _rows(tmp_path)["live"]
    assert row["status"] == "died" and f"process {proc.pid} ended" in row["error"]


def test_reused_pid_and_other_host(tmp_path):
    """Our own pid with another start time is a different process; another host is unknown."""
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "lmforge_config.yaml").write_text("stage: sft\nmodel: {path: builtin:tiny-llama}\n")
    rundir.mark_running(run)
    assert _rows(tmp_path)["x"]["status"] == "running"
    state = rundir.read_state(run)
    if state["process_start"] is not None:  # /proc available (Linux)
        (run / rundir.STATE_FILE).write_text(json.dumps(dict(state, process_start="1")))
        assert _rows(tmp_path)["x"]["status"] == "died"
    (run / rundir.STATE_FILE).write_text(json.dumps(dict(state, host="elsewhere.invalid")))
    row = _rows(tmp_path)["x"]
    assert row["status"] == "running" and "elsewhere.invalid" in row["error"]


def test_cli_run_that_fails_at_start_up_shows_failed(tmp_path):
    """A data row that validate's first-rows check does not reach: train fails after the run
    directory exists; `lmforge runs` shows failed with the error instead of 'started'."""
    rows = [{"instruction": f"q{i}", "output": "a"} for i in range(40)]
    rows[35] = {"instruction": "q", "output": ["not", "text"]}
    cfg = _cfg(tmp_path, "bad", rows)
    config = tmp_path / "bad.yaml"
    from lmforge.config.loader import to_yaml

    config.write_text(to_yaml(cfg))
    start = time.time()
    proc = run_cli("train", str(config), timeout=300)
    assert proc.returncode != 0
    table = run_cli("runs", str(tmp_path / "runs"), timeout=120)
    assert table.returncode == 0, table.stderr
    assert "failed" in table.stdout and "bad failed:" in table.stdout, table.stdout
    row = _rows(tmp_path)["bad"]
    assert row["status"] == "failed" and ":36:" in row["error"], row  # file:line of the bad row
    assert row["modified"] >= start - 1
