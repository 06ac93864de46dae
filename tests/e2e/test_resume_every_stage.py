"""Resume works the same for every Trainer-based stage: a run is killed with SIGKILL right after a
checkpoint (no clean-up runs), restarted with ``train.resume: auto``, and ends with the same
weights as a run that was never interrupted. (PPO, lmforge's own loop: tests/e2e/test_resume_ppo.py;
kills at random moments, mid-save included: tests/invariants/test_checkpoint_kill.py.)

The kill is deterministic: a callback passed through ``stages.run(cfg, callbacks=...)`` kills its
own process at the start of the step after the checkpoint, so the checkpoint is complete and the
process dies mid-run. The processes come from the forkserver of the kill test (imports once).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from tests.invariants.test_checkpoint_kill import forkserver

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("pt", "sft", "rm", "dpo", "kto", "orpo", "grpo")
KILL_AFTER = 2  # the checkpoint step; the process dies when step 3 begins
MAX_STEPS = 4
# GRPO samples completions: the sampling RNG is restored from the checkpoint (trainer RNG
# state), so the resumed run draws the same completions and the weights agree as tightly.
TOLERANCE = {"grpo": 1e-6}


def _child(cfg_dict: dict, kill_at: int | None) -> None:
    import logging

    from transformers import TrainerCallback

    logging.basicConfig(level=logging.WARNING, force=True)
    os.chdir(ROOT)  # the example configs name their data and reward files relative to the repo

    class KillAfterCheckpoint(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if kill_at is not None and state.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    from lmforge.config import validate
    from lmforge.stages import run

    run(validate(cfg_dict), callbacks=[KillAfterCheckpoint()])


def _config(stage: str, model_dir: Path, out: Path) -> dict:
    cfg = yaml.safe_load((ROOT / "examples" / "tiny" / f"{stage}.yaml").read_text())
    cfg["model"] = {"path": str(model_dir)}
    cfg["data"]["eval"] = None  # evaluation is not what this test is about
    cfg["train"] = {"output_dir": str(out), "max_steps": MAX_STEPS, "save_steps": KILL_AFTER,
                    "batch_size": cfg["train"]["batch_size"],
                    "learning_rate": cfg["train"]["learning_rate"], "logging_steps": 1,
                    "report_to": ["none"], "num_threads": 1, "seed": 7, "resume": "auto"}
    return cfg


def _run(ctx, cfg: dict, kill_at: int | None) -> int:
    proc = ctx.Process(target=_child, args=(cfg, kill_at))
    proc.start()
    proc.join(300)
    return proc.exitcode


def _weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


@pytest.fixture(scope="module")
def ctx():
    return forkserver()


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_after_checkpoint_then_resume_gives_the_same_weights(ctx, stage, tiny_model_dir,
                                                                      tmp_path):
    from lmforge.training.checkpoints import checkpoint_dirs, step_of, verify

    straight = tmp_path / "straight"
    assert _run(ctx, _config(stage, tiny_model_dir, straight), None) == 0

    killed = tmp_path / "killed"
    cfg = _config(stage, tiny_model_dir, killed)
    assert _run(ctx, cfg, KILL_AFTER) == -signal.SIGKILL
    saved = checkpoint_dirs(killed)
    assert [step_of(p) for p in saved] == [KILL_AFTER]
    assert verify(saved[0]) is None  # complete, manifest verifies
    assert not (killed / "model.safetensors").exists()  # it really died mid-run

    assert _run(ctx, cfg, None) == 0
    import json

    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["global_step"] == MAX_STEPS
    a, b = _weights(straight), _weights(killed)
    assert a.keys() == b.keys()
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert diff <= TOLERANCE.get(stage, 1e-6), f"{stage}: weights differ by {diff}"
