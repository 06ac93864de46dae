"""Stage ppo survives kill -9: a run is killed (SIGKILL: no clean-up runs) while it writes its
second checkpoint (a test hook sleeps after the weights, before the manifest), restarted with
``train.resume: auto``, and ends with the weights and the per-step rewards of a run that was
never interrupted.

Exact (<= 1e-6 on the CPU, in fact bit-identical here) because a PPO checkpoint restores
everything its sampling depends on: the torch/python RNG (rollouts sample with it), the
mini-batch generator, the prompt sampler's position, the adaptive KL coefficient, optimizer and
scheduler. The half-written checkpoint stays a staging directory: never taken for a checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from tests.conftest import REPO
from tests.integration.rl_toys import example, prompt_data, write_rewards

STEPS = 4


def _start(cfg: dict, tmp_path: Path, name: str, slow_save: float = 0.0) -> subprocess.Popen:
    """`lmforge train <config>` in a fresh process, its output into <name>.log."""
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               LMFORGE_TEST_SLOW_SAVE=str(slow_save))
    with (tmp_path / f"{name}.log").open("w") as log:
        return subprocess.Popen([sys.executable, "-m", "lmforge", "train", str(config)],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen, tmp_path: Path, name: str) -> str:
    proc.wait(300)
    log = (tmp_path / f"{name}.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    return log


def _config(tmp_path: Path, out: Path) -> dict:
    cfg = example("ppo")
    cfg["data"] = prompt_data(tmp_path, n=32)
    cfg["ppo"].update(reward_functions=[f"{write_rewards(tmp_path)}:digit_share"],
                      mini_batch_size=4)
    cfg["train"] = {"output_dir": str(out), "max_steps": STEPS, "batch_size": 4,
                    "save_steps": 2, "save_total_limit": 2, "learning_rate": 1e-3,
                    "lr_scheduler": "cosine", "logging_steps": 1, "num_threads": 1,
                    "report_to": ["none"], "seed": 11, "resume": "auto"}
    return cfg


def _weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def test_ppo_killed_mid_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path):
    from safetensors.torch import load_file

    from lmforge.training.checkpoints import STAGING, latest_complete, verify

    full = tmp_path / "full"
    uninterrupted = _start(_config(tmp_path, full), tmp_path, "full")
    out = tmp_path / "killed"
    cfg = _config(tmp_path, out)
    proc = _start(cfg, tmp_path, "killed", slow_save=1.0)
    end = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < end:
        if verify(out / "checkpoint-2") is None and (out / f"{STAGING}checkpoint-4").is_dir():
            break  # checkpoint-2 complete, checkpoint-4 half written
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "checkpoint-4").exists() and not (out / "model.safetensors").exists()
    assert latest_complete(out) == str(out / "checkpoint-2")

    _finish(uninterrupted, tmp_path, "full")
    log = _finish(_start(cfg, tmp_path, "resumed"), tmp_path, "resumed")
    assert "resumed from" in log and "checkpoint-2 at step 2" in log, log[-3000:]
    assert not list(out.glob(STAGING + "*"))  # the half-written save was cleaned up
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    a, b = load_file(str(full / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert sorted(a) == sorted(b)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
    heads = [load_file(str(d / "critic" / "value_head.safetensors")) for d in (full, out)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    want = json.loads((full / f"checkpoint-{STEPS}" / "ppo_state.json").read_text())["history"]
    got = json.loads((out / f"checkpoint-{STEPS}" / "ppo_state.json").read_text())["history"]
    assert [h["step"] for h in got] == list(range(1, STEPS + 1))
    for w, g in zip(want, got):
        assert abs(w["reward_mean"] - g["reward_mean"]) <= 1e-6 and \
            abs(w["loss"] - g["loss"]) <= 1e-6, (w["step"], w, g)
