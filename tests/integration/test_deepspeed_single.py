"""DeepSpeed in ONE process (issue 18, item 13): ``train.deepspeed`` without ``--nproc 2`` (or
with ``--nproc 1``) used to die with ``No module named 'mpi4py'`` (DeepSpeed falls back to MPI
discovery without a launcher's RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT / LOCAL_RANK).
stages.run now gives such a run a 1-process rendezvous on a free loopback port
(distributed/ranks.py ``single_process_rendezvous``), gloo on the CPU.

- ``lmforge train run.yaml --nproc 1`` with ``train.deepspeed: zero2`` completes, with the
  losses and final weights of the same run without DeepSpeed;
- zero3 and zero3_offload, one after the other in one process, then a run without DeepSpeed:
  each completes with the same losses and weights, the launcher variables are gone after each
  run, and the plain run after them is not DeepSpeed.

DeepSpeed runs happen in subprocesses: its 1-process group and caches stay in the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.test_distributed import (STEPS, assert_same_losses, assert_same_weights,
                                                data_file, losses, tree, weights)

pytest.importorskip("deepspeed")

__all__ = ["data_file"]  # the fixture, shared with test_distributed.py

DRIVER = """
import json, os, sys
from transformers import TrainerCallback
from lmforge.config import validate
from lmforge.stages import run

class Probe(TrainerCallback):
    engine = None
    def on_train_begin(self, args, state, control, **kwargs):
        from accelerate.state import AcceleratorState
        self.engine = str(AcceleratorState().distributed_type.value)

spec = json.loads(open(sys.argv[1]).read())
out = {}
for name, config in spec["jobs"].items():
    probe = Probe()
    result = run(validate(config), callbacks=[probe])
    launcher = {k: os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT",
                                               "ACCELERATE_USE_DEEPSPEED")}
    out[name] = {"losses": {h["step"]: h["loss"] for h in result.log_history if "loss" in h},
                 "engine": probe.engine, "world_size": result.metrics["world_size"],
                 "launcher_env_after": launcher}
open(spec["results"], "w").write(json.dumps(out))
"""


@pytest.fixture(scope="module")
def plain(tiny_model_dir, data_file, tmp_path_factory):
    """The reference: the same run without DeepSpeed, in this process."""
    from lmforge.config import validate
    from lmforge.stages import run

    out = tmp_path_factory.mktemp("plain") / "run"
    result = run(validate(tree(tiny_model_dir, data_file, out)))
    return {"losses": losses(result.log_history), "dir": out}


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                        "LMFORGE_LAUNCHED")}
    return dict(env, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def test_zero2_in_one_process_from_the_cli(plain, tiny_model_dir, data_file, tmp_path):
    out = tmp_path / "zero2"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tree(tiny_model_dir, data_file, out, deepspeed="zero2",
                                          save_steps=STEPS)))
    proc = subprocess.run([sys.executable, "-m", "lmforge", "train", str(config), "--nproc", "1"],
                          cwd=REPO, env=_clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "mpi4py" not in proc.stderr and "done:" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 1 and metrics["global_step"] == STEPS
    state = json.loads((out / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    assert_same_losses(losses(state["log_history"]), plain["losses"])
    assert_same_weights(weights(out), weights(plain["dir"]))


def test_zero3_and_offload_in_one_process_then_a_plain_run(plain, tiny_model_dir, data_file,
                                                           tmp_path):
    jobs = {name: tree(tiny_model_dir, data_file, tmp_path / name, deepspeed=name)
            for name in ("zero3", "zero3_offload")}
    jobs["after"] = tree(tiny_model_dir, data_file, tmp_path / "after")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"jobs": jobs, "results": str(tmp_path / "results.json")}))
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(spec)], cwd=REPO,
                          env=_clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for name in ("zero3", "zero3_offload", "after"):
        run = results[name]
        assert run["engine"] == ("NO" if name == "after" else "DEEPSPEED"), name
        assert run["world_size"] == 1
        assert set(run["launcher_env_after"].values()) == {None}, name
        assert_same_losses(run["losses"], plain["losses"])
        assert_same_weights(weights(tmp_path / name), weights(plain["dir"]))
