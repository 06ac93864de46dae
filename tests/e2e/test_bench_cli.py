"""``python -m bench`` end to end on quick scenarios: a fresh worker process per job, the table
printed, results.json and results.md written with the targets; without LLaMA-Factory's venv its
jobs are skipped with the reason, and the other tools are still measured and scored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_bench_quick_sft_without_the_llamafactory_venv(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO),
               LMFORGE_BENCH_LF_PYTHON=str(tmp_path / "no-venv" / "bin" / "python"),
               LMFORGE_BENCH_PYTHON=sys.executable)  # lmforge's jobs: this venv, probed
    proc = subprocess.run([sys.executable, "-m", "bench", "a", "--quick", "--threads", "1",
                           "--gate-timeout", "1", "--out", str(tmp_path / "out")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "LLaMA-Factory: skipped (LLaMA-Factory not run: " in proc.stdout
    assert "make bench-peers" in proc.stdout
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    jobs = doc["scenarios"]["a"]["jobs"]
    assert "make bench-peers" in jobs["LLaMA-Factory fair"]["skipped"]
    assert doc["machine"]["llamafactory"]["skipped"].startswith("LLaMA-Factory not run")
    assert doc["machine"]["lmforge_venv"]["venv"] == str(Path(sys.executable).parent.parent)
    assert "lmforge, TRL, HF Trainer ran in " in proc.stdout
    ours, trl, fair = jobs["lmforge"], jobs["TRL"], jobs["TRL fair"]
    # one held-out loss function for every tool, on the adapter each one saved
    for r in (ours, trl, fair):
        assert 0 < r["eval_loss"] < 20 and "gate" in r["runs"][0]
        assert 0 < r["mfu_executed"] < 1 and 0 < r["mfu_nominal"] < 1
        assert r["precision"] == "fp32" and r["peak_rss_mb"] > 50
        # each run is measured against the matmul peak probed just before its round
        assert r["runs"][0]["matmul_peak"]["matmul_flops"] / 1e9 == pytest.approx(
            r["peak_gflops"])
    assert "[a] matmul fp32 peak: " in proc.stdout
    assert trl["gradient_checkpointing"] is True and fair["gradient_checkpointing"] is False
    assert ours["gradient_checkpointing"] is False
    # lmforge projects only the trained positions onto the vocabulary, trl every position;
    # trl's checkpointing recomputes the forward pass
    assert ours["head_fraction"] < 0.5 < trl["head_fraction"]
    assert trl["executed_flops"]["recompute"] > 0 == ours["executed_flops"]["recompute"]
    assert ours["examples"] == trl["examples"] == 32
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| lmforge | TRL | lmforge / TRL |" in md and "utilisation, executed" in md
    assert "- LLaMA-Factory: LLaMA-Factory not run" in md
