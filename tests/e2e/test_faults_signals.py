"""SIGTERM / SIGINT to a training process (`lmforge train` in a child process): it finishes the
current step, writes a complete checkpoint, prints 'error: interrupted by SIG... at step N;
checkpoint saved: ...' with a resume hint (no traceback) and exits with 128 + the signal number;
`train.resume: auto` then continues from that checkpoint. The children are forked from a
forkserver that imported torch/transformers once (a fresh interpreter per run would spend most of
the test importing)."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

import pytest
import yaml

from tests.conftest import REPO

TOY = str(REPO / "examples/data/toy_train.jsonl")


def _cli(argv: list[str], log_file: str) -> None:
    """Child: `lmforge ARGV` with stdout (logs) and stderr (errors) sent to one file."""
    sys.stdout = sys.stderr = open(log_file, "w", buffering=1)
    os.dup2(sys.stderr.fileno(), 1)
    os.dup2(sys.stderr.fileno(), 2)
    from lmforge import cli

    sys.exit(cli.main(argv))


@pytest.fixture(scope="module")
def ctx():
    from tests.invariants.test_checkpoint_kill import forkserver

    return forkserver()  # the same preloaded forkserver as the kill test


def _config(tmp_path, model_dir, max_steps: int):
    cfg = {"stage": "sft", "model": {"path": str(model_dir)}, "adapter": {"type": "full"},
           "data": {"train": TOY, "format": "alpaca", "max_length": 48},
           "train": {"output_dir": str(tmp_path / "out"), "max_steps": max_steps,
                     "save_steps": 1000, "batch_size": 2, "logging_steps": 1,
                     "report_to": ["none"], "num_threads": 1, "resume": "auto"}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_exits_cleanly(ctx, tiny_model_dir, tmp_path, sig):
    from lmforge.training.checkpoints import checkpoint_dirs, step_of, verify

    config = _config(tmp_path, tiny_model_dir, max_steps=400)
    err = tmp_path / "stderr.txt"
    proc = ctx.Process(target=_cli, args=(["train", str(config)], str(err)))
    proc.start()
    end = time.monotonic() + 180
    while time.monotonic() < end and proc.is_alive():
        if err.exists() and re.search(r"step 3:", err.read_text()):
            break
        time.sleep(0.05)
    assert proc.is_alive(), err.read_text()[-3000:]
    os.kill(proc.pid, sig)
    proc.join(120)
    text = err.read_text()
    assert proc.exitcode == 128 + sig, text[-3000:]
    found = re.search(r"error: interrupted by (\w+) at step (\d+); checkpoint saved: (\S+)", text)
    assert found, text[-3000:]
    name, step, path = found.group(1), int(found.group(2)), found.group(3)
    assert name == signal.Signals(sig).name and 3 <= step < 400
    assert "hint: resume with train.resume: auto" in text and "Traceback" not in text
    [ckpt] = checkpoint_dirs(tmp_path / "out")
    assert str(ckpt) == path and step_of(ckpt) == step and verify(ckpt) is None
    assert not (tmp_path / "out" / "model.safetensors").exists()  # no "finished" model

    # resume: continues at that step and finishes
    _config(tmp_path, tiny_model_dir, max_steps=step + 3)
    proc = ctx.Process(target=_cli, args=(["train", str(config)], str(tmp_path / "resumed.txt")))
    proc.start()
    proc.join(180)
    text = (tmp_path / "resumed.txt").read_text()
    assert proc.exitcode == 0, text[-3000:]
    state = json.loads((tmp_path / "out" / f"checkpoint-{step + 3}" /
                        "trainer_state.json").read_text())
    # steps 1..step come from the interrupted run (restored with its state), the rest are new
    assert [h["step"] for h in state["log_history"] if "loss" in h] == list(range(1, step + 4))
