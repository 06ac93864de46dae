"""``python -m bench`` end to end on its quick generation scenario: a fresh worker process per
job, the table printed, results.json and results.md written with the targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO


def test_bench_quick_generation(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bench", "e", "--quick", "--threads", "1",
                           "--out", str(tmp_path)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "batched generation vs one-by-one" in proc.stdout
    doc = json.loads((tmp_path / "results.json").read_text())
    jobs = doc["scenarios"]["e"]["jobs"]
    batched, single = jobs["lmforge batched"], jobs["one-by-one"]
    assert batched["prompts"] == single["prompts"] == 8
    assert batched["generated_tokens"] > 0 and single["generated_tokens"] > 0
    assert batched["peak_rss_mb"] > 50 and doc["machine"]["threads"] == 1
    target = next(t for t in doc["targets"] if t["target"].startswith("(e)"))
    ratio = batched["tokens_per_s"] / single["tokens_per_s"]
    assert target["value"] == f"{ratio:.1f}x" and target["met"] == (ratio >= 5)
    assert "### (e)" in (tmp_path / "results.md").read_text()


def test_bench_list_and_unknown_scenario():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "sft-bbc" in out.stdout and "preprocessing" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "bench", "zz"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown scenario 'zz'" in bad.stderr
