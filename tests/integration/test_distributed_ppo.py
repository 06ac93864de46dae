"""Stage ppo on 2 gloo processes (torchrun): data-parallel PPO.

Each process samples and scores its own share of every iteration's prompts; the gradients of each
mini-batch are averaged over the processes, so every process holds the same weights after every
step (checked here: each rank writes a digest of its policy, value head and optimizer state). Only
rank 0 writes checkpoints, logs and the final model; every rank's RNG state goes into the
checkpoint, which carries the same manifest as the Trainer stages' (train.resume: auto takes it).
A second torchrun session resumes from checkpoint-2 and must end with the uninterrupted run's
weights (the per-rank sampling RNG is restored).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STEPS = 4


def _digest(modules) -> str:
    h = hashlib.sha256()
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _driver(spec_file: str) -> None:
    """Run the spec's PPO config in this (torchrun) process; every rank writes its digest."""
    from lmforge import stages
    from lmforge.config import validate
    from lmforge.rl import driver

    spec = json.loads(Path(spec_file).read_text())
    seen = {}
    run_loop = driver.run_loop

    def recording(ppo, *args, **kwargs):
        out = run_loop(ppo, *args, **kwargs)
        seen["digest"] = _digest([ppo.policy, ppo.value_head])
        return out

    driver.run_loop = recording
    stages.run(validate(spec["config"]))
    rank = int(os.environ.get("RANK", "0"))
    Path(f"{spec['results']}.rank{rank}").write_text(seen["digest"])


def _torchrun(script: str, spec: Path) -> subprocess.CompletedProcess:
    from tests.conftest import REPO

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", script, str(spec)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)


def _config(tmp_path: Path, out: Path, **train) -> dict:
    from tests.integration.rl_toys import example, prompt_data, write_rewards

    cfg = example("ppo")
    cfg["data"] = prompt_data(tmp_path, n=32)
    cfg["ppo"].update(reward_functions=[f"{write_rewards(tmp_path)}:digit_share"],
                      mini_batch_size=4)
    cfg["train"] = {"output_dir": str(out), "max_steps": STEPS, "batch_size": 4,
                    "save_steps": 2, "learning_rate": 1e-3, "lr_scheduler": "constant",
                    "logging_steps": 1, "num_threads": 1, "report_to": ["none"], **train}
    return cfg


def _launch(tmp_path: Path, name: str, cfg: dict) -> list[str]:
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({"config": cfg, "results": str(tmp_path / name)}))
    proc = _torchrun(__file__, spec)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return [(tmp_path / f"{name}.rank{r}").read_text() for r in (0, 1)]


def test_two_process_ppo_checkpoints_stays_in_sync_and_resumes(tmp_path):
    from safetensors.torch import load_file

    from lmforge.training.checkpoints import latest_complete, verify

    full = tmp_path / "full"
    rank0, rank1 = _launch(tmp_path, "full", _config(tmp_path, full))
    assert rank0 == rank1  # gradients averaged over the processes: one model, not two
    assert verify(full / "checkpoint-2") is None and verify(full / "checkpoint-4") is None
    assert latest_complete(full) == str(full / "checkpoint-4")
    assert sorted(p.name for p in full.glob("checkpoint-2/rng_state*")) == \
        ["rng_state_0.pth", "rng_state_1.pth"]
    assert not list(full.glob(".*"))  # no staging directory left behind
    state = json.loads((full / "checkpoint-4" / "ppo_state.json").read_text())
    assert state["world_size"] == 2 and [h["step"] for h in state["history"]] == [1, 2, 3, 4]
    metrics = json.loads((full / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["global_step"] == STEPS
    assert metrics["data_train_examples"] == 32

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    import shutil

    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    again = _launch(tmp_path, "resumed", _config(tmp_path, resumed, resume="auto"))
    assert again == [rank0, rank1]
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6


if __name__ == "__main__":  # run by torchrun
    _driver(sys.argv[1])
