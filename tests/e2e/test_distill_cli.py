"""`lmforge distill` as a user runs it, against the loopback FakeTeacher: kill -9 / Ctrl-C half-way
and rerun (each record exactly once), the key never written, the example config, exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_cli
from tests.integration.test_distill_fakeserver import (KEY_ENV, SECRET, FakeTeacher,
                                                       make_config, read_jsonl)

ENV = {KEY_ENV: SECRET}


@pytest.fixture
def fake():
    with FakeTeacher() as server:
        yield server


def write_config(tmp: Path, tree: dict) -> Path:
    path = tmp / "distill.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _start(cfg: Path) -> subprocess.Popen:
    env = dict(os.environ, **ENV)
    return subprocess.Popen([sys.executable, "-m", "lmforge", "distill", str(cfg), "--no-progress"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_rows(path: Path, n: int, proc: subprocess.Popen, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {n} rows (exit {proc.poll()})")


def test_killed_and_interrupted_runs_resume_with_each_record_exactly_once(tmp_path, fake):
    fake.delay = 0.08
    fake.wrong = {"r5": None, "r17": None}
    tree = make_config(tmp_path, fake.url, n=30, concurrency=2)
    cfg = write_config(tmp_path, tree)
    out = Path(tree["distill"]["output"])
    rejected = out.with_name("train.rejected.jsonl")

    proc = _start(cfg)  # 1: Ctrl-C after a few records
    _wait_rows(out, 4, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    report = json.loads(out.with_name("train.report.json").read_text())
    assert report["interrupted"] is True and report["done"] >= 4

    proc = _start(cfg)  # 2: kill -9 half-way
    _wait_rows(out, 12, proc)
    proc.kill()
    proc.wait(timeout=30)

    res = run_cli("distill", str(cfg), env=ENV)  # 3: finish
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(out.with_name("train.report.json").read_text())
    assert report["skipped"] >= 12 and report["skipped"] + report["done"] == 30
    kept = [r["distill"]["id"] for r in read_jsonl(out)]
    rej = [r["distill"]["id"] for r in read_jsonl(rejected)]
    assert sorted(kept + rej) == sorted(f"r{i}" for i in range(30))  # each exactly once
    assert sorted(rej) == ["r17", "r5"]
    assert "skipped" in res.stdout and "data:" in res.stdout


def test_api_key_never_written_and_report_exit_code(tmp_path, fake):
    fake.script = ["429:0", "500"]
    fake.fail_ids = {"r3": "echo400"}  # the server puts the Authorization header in its error
    out_dir = tmp_path / "out"
    tree = make_config(tmp_path, fake.url, n=6, retries={"max_attempts": 3})
    cfg = write_config(tmp_path, tree)
    res = run_cli("distill", str(cfg), env=ENV)
    assert res.returncode == 1, res.stderr[-3000:]  # a record failed
    assert fake.auth == {f"Bearer {SECRET}"}
    assert "failed r3" in res.stdout and "HTTP 400" in res.stdout and "***" in res.stdout
    files = [p for p in out_dir.rglob("*") if p.is_file()] + [cfg]
    assert {p.name for p in files} >= {"train.jsonl", "train.report.json", "distill.yaml"}
    for path in files:
        assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in res.stdout + res.stderr
    report = json.loads((out_dir / "train.report.json").read_text())
    assert report["failed"][0]["id"] == "r3" and "***" in report["failed"][0]["reason"]
    block = yaml.safe_load(res.stdout[res.stdout.index("data:"):])
    assert block == {"data": {"train": str(out_dir / "train.jsonl"),
                              "format": "prompt_response"}}


def test_config_errors_exit_2(tmp_path, fake):
    cfg = write_config(tmp_path, make_config(tmp_path, fake.url, n=2))
    res = run_cli("distill", str(cfg), "distill.concurency=3", "distill.verify.mode=vote",
                  env=ENV)
    assert res.returncode == 2
    assert "distill.concurency: unknown key; did you mean 'concurrency'?" in res.stderr
    assert "distill.verify.mode:" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("distill", str(cfg), env={KEY_ENV: ""})
    assert res.returncode == 2 and f"environment variable {KEY_ENV} is not set" in res.stderr
    assert fake.requests == 0


def _solve_example(prompt: str):
    """Answers only the arithmetic problems of examples/distill, anything else with '?'."""
    m = re.search(r"What is (\d+) ([+-]) (\d+) \* (\d+)\?", prompt)
    rid = prompt.split("\n")[0]
    if not m:
        return rid, "?", "Not sure:"
    a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
    return rid, a + b * c if op == "+" else a - b * c, f"{b} * {c} = {b * c}, so the result is"


def test_example_config_runs_with_endpoint_overrides(tmp_path, fake):
    fake.solve = _solve_example
    out = tmp_path / "ex" / "train.jsonl"
    res = run_cli("distill", "examples/distill/distill.yaml",
                  f"distill.teacher.base_url={fake.url}",
                  f"distill.teacher.api_key_env={KEY_ENV}", f"distill.output={out}",
                  "distill.limit=6", "distill.concurrency=3", env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    problems = [json.loads(x) for x in (REPO / "examples/distill/problems.jsonl")
                .read_text().splitlines()[:6]]
    arithmetic = sorted(p["id"] for p in problems if p["kind"] == "arithmetic")
    kept = read_jsonl(out)
    assert sorted(r["distill"]["id"] for r in kept) == arithmetic  # keep: first, 1 per record
    for row in kept:
        assert row["prompt"] == row["origin"]["question"]  # the student prompt, no instructions
        assert "system" not in row
        assert row["response"].endswith(f"Answer: {row['origin']['answer']}")
    rejected = read_jsonl(out.with_name("train.rejected.jsonl"))
    reasons = {r["reason"] for r in rejected if r["distill"]["id"] not in arithmetic}
    assert all(x.startswith("answer '?' != gold") for x in reasons) and reasons
    sent = fake.bodies[0]["messages"]
    assert sent[0]["role"] == "system" and "Answer: <answer>" in sent[1]["content"]
