"""Atomic checkpoints under kill -9: a training process is killed (SIGKILL, no clean-up runs) at
random moments -- while a checkpoint is being written (a test hook sleeps mid-save, after the
weights and before the manifest) and between saves -- and restarted with ``train.resume: auto``.

After every kill each ``checkpoint-N`` directory on disk verifies against its manifest (a partial
save is never visible as a checkpoint), every restart resumes from the newest complete one, and
the run, once it finishes, ends with the same weights as a run that was never interrupted (the
resume invariant of test_training_invariants.py, now through crashes).

The training processes are forked from a forkserver that imported torch/transformers once, so a
restart costs the run's own work, not the imports. Default: 3 kills; ``-m slow``: 12.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import write_jsonl

PRELOAD = ["torch", "transformers", "transformers.trainer", "datasets", "accelerate",
           "lmforge.cli", "lmforge.stages.sft", "lmforge.training.trainer", "lmforge.training.faults"]
SLOW_SAVE = 0.6  # seconds a save sleeps before its manifest: the window for "kill mid-save"


def _train(cfg_dict: dict, log_file: str, slow_save: float) -> None:
    """Child process: one `lmforge train` (stages.run) with resume: auto."""
    import logging

    os.environ["LMFORGE_TEST_SLOW_SAVE"] = str(slow_save)
    logging.basicConfig(filename=log_file, level=logging.INFO, force=True)
    from lmforge.config import validate
    from lmforge.stages import run

    run(validate(cfg_dict))


def forkserver():
    """The forkserver context with the heavy imports preloaded (shared with the signal test:
    one forkserver per pytest process)."""
    import importlib.util

    context = multiprocessing.get_context("forkserver")
    extra = [m for m in ("deepspeed", "wandb") if importlib.util.find_spec(m) is not None]
    context.set_forkserver_preload(PRELOAD + extra)
    return context


@pytest.fixture(scope="module")
def ctx():
    return forkserver()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = random.Random(5)
    words = "red green blue one two three four five".split()
    rows = [{"instruction": f"Item {i}?", "input": "",
             "output": " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))}
            for i in range(24)]
    return write_jsonl(tmp_path_factory.mktemp("kill") / "train.jsonl", rows)


def _cfg(model_dir, data_file, out, max_steps: int) -> dict:
    return {"stage": "sft", "model": {"path": str(model_dir)}, "adapter": {"type": "full"},
            "data": {"train": str(data_file), "format": "alpaca", "max_length": 48},
            "train": {"output_dir": str(out), "max_steps": max_steps, "save_steps": 2,
                      "save_total_limit": 2, "batch_size": 4, "learning_rate": 3e-3,
                      "logging_steps": 1, "report_to": ["none"], "num_threads": 1, "seed": 3,
                      "resume": "auto"}}


def _start(ctx, cfg: dict, log: Path, slow: float):
    proc = ctx.Process(target=_train, args=(cfg, str(log), slow))
    proc.start()
    return proc


def _wait(proc, condition, timeout: float = 120.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.is_alive():
        if condition():
            return True
        time.sleep(0.02)
    return False


def _staging(out: Path) -> set:
    from lmforge.training.checkpoints import STAGING

    found = set()
    for p in out.glob(STAGING + "*") if out.is_dir() else []:
        try:
            found.add((p.name, p.stat().st_ino, p.stat().st_mtime_ns))
        except FileNotFoundError:
            pass
    return found


def _newest(out: Path) -> int:
    from lmforge.training.checkpoints import checkpoint_dirs, step_of

    return max((step_of(p) for p in checkpoint_dirs(out)), default=0)


def _all_visible_complete(out: Path) -> None:
    from lmforge.training.checkpoints import checkpoint_dirs, verify

    for path in checkpoint_dirs(out):
        assert verify(path) is None, f"{path.name} is visible but incomplete: {verify(path)}"


def _weights(path: Path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _kill_loop(ctx, tiny_model_dir, data_file, tmp_path, kills: int, max_steps: int):
    from lmforge.training.checkpoints import latest_complete

    out = tmp_path / "killed"
    cfg = _cfg(tiny_model_dir, data_file, out, max_steps)
    rng = random.Random(kills)
    resumed_from = []
    for i in range(kills):
        expected = latest_complete(out)
        log = tmp_path / f"run{i}.log"
        proc = _start(ctx, cfg, log, SLOW_SAVE)
        if i % 2 == 0:  # mid-save: a new staging directory exists, its manifest not yet
            stale = _staging(out)
            seen = _wait(proc, lambda: bool(_staging(out) - stale))
        else:  # mid-training: some time after a new complete checkpoint appeared
            before = _newest(out)
            seen = _wait(proc, lambda: _newest(out) > before)
            time.sleep(rng.uniform(0.0, 0.4))
        assert seen and proc.is_alive(), f"kill {i}: the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
        _all_visible_complete(out)
        if expected:
            resumed_from.append((log, expected))
    final = _start(ctx, cfg, tmp_path / "final.log", 0.0)
    final.join(300)
    assert final.exitcode == 0
    _all_visible_complete(out)
    for log, expected in resumed_from:
        assert f"resuming from {expected}" in log.read_text(), log.read_text()[-2000:]
    return out, cfg


def _straight(ctx, tiny_model_dir, data_file, tmp_path, max_steps: int) -> Path:
    out = tmp_path / "straight"
    proc = _start(ctx, _cfg(tiny_model_dir, data_file, out, max_steps), tmp_path / "s.log", 0)
    proc.join(300)
    assert proc.exitcode == 0
    return out


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-6


def test_kill_9_during_saves_and_steps_then_resume_gives_the_same_weights(
        ctx, tiny_model_dir, data_file, tmp_path):
    out, _ = _kill_loop(ctx, tiny_model_dir, data_file, tmp_path, kills=3, max_steps=10)
    assert not list(out.glob(".partial-*"))  # stale staging removed by the next save
    _same_weights(out, _straight(ctx, tiny_model_dir, data_file, tmp_path, 10))


@pytest.mark.slow
def test_kill_9_many_times(ctx, tiny_model_dir, data_file, tmp_path):
    out, _ = _kill_loop(ctx, tiny_model_dir, data_file, tmp_path, kills=12, max_steps=30)
    _same_weights(out, _straight(ctx, tiny_model_dir, data_file, tmp_path, 30))
