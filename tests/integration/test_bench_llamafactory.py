"""LLaMA-Factory run for real from its pinned venv (``make bench-peers``), as the benchmark runs
it: skipped where that venv is absent (CI has none). Its CLI accepts the arguments bench writes
(``llamafactory-cli train`` on a YAML, offline, on the CPU), and the benchmark job measures it
with the shared recorder and probe, and saves an adapter the shared loss function can score."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from bench import data, peers

PYTHON, WHY = peers.llamafactory_python()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(PYTHON is None, reason=str(WHY))]
LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}


def _spec(tmp_path: Path, **extra) -> dict:
    model = data.tiny_bench_model()
    return dict({"model": str(model), "model_path": str(model), "lf_template": "chatml",
                 "stage": "sft", "format": "alpaca", "max_length": 256, "batch_size": 4,
                 "lr": 1e-3, "seed": 0, "threads": 1, "lora": LORA, "max_steps": 3,
                 "train_file": str(data.write_jsonl(data.instructions(16, 0),
                                                    tmp_path / "train.jsonl")),
                 "eval_file": str(data.write_jsonl(data.instructions(4, 1),
                                                   tmp_path / "eval.jsonl")),
                 "save_dir": str(tmp_path / "saved")}, **extra)


def test_llamafactory_cli_trains_from_the_arguments_bench_writes(tmp_path):
    from bench.lf_jobs import lf_args, lf_dataset

    spec = _spec(tmp_path)
    lf_dataset(spec["train_file"], tmp_path / "data")
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(lf_args(spec, tmp_path / "data", tmp_path / "out")))
    cli = Path(PYTHON).parent / "llamafactory-cli"
    env = dict(os.environ, HF_DATASETS_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    proc = subprocess.run([str(cli), "train", str(config)], capture_output=True, text=True,
                          timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    adapter = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and set(adapter["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert "Gradient checkpointing enabled" in proc.stdout + proc.stderr


@pytest.mark.parametrize("settings,packing", [("defaults", False), ("fair", True)])
def test_the_benchmark_job_measures_and_saves(tmp_path, settings, packing):
    from bench.runner import run_job

    spec = _spec(tmp_path, job="lf_sft", settings=settings, packing=packing, warmup_steps=1)
    r = run_job(spec, tmp_path, "lf", 600, PYTHON)
    assert "error" not in r, r.get("traceback", r.get("error"))
    assert r["llamafactory_version"] == peers.LF_VERSION and r["steps"] == 3
    assert r["gradient_checkpointing"] is (settings == "defaults")
    assert r["head_fraction"] == 1.0  # its loss projects every position
    assert r["executed_flops"]["total"] > 0 and r["real_tokens"] > 0
    if packing:
        rows = r["computed_tokens"] // spec["max_length"]  # blocks padded to the cutoff
        assert r["arguments"]["neat_packing"] is True and r["examples"] > rows
    scored = run_job(dict(spec, job="eval_saved"), tmp_path, "eval", 600)
    assert "error" not in scored, scored.get("traceback")
    assert 0 < scored["eval_loss"] < 20 and scored["eval_rows"] == 4
