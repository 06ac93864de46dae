"""train.save_total_limit through a real run: rotation never deletes the checkpoint the best-metric
choice needs (eval.best_metric, tracked by eval/training.py) nor the newest one (resume), and the
recorded best checkpoint is the published path, never the staging directory it was written in."""

from __future__ import annotations

import json

from tests.conftest import REPO


def test_best_and_newest_checkpoints_survive_rotation(tiny_model_dir, tmp_path):
    from lmforge.config import validate
    from lmforge.stages import run
    from lmforge.training.checkpoints import checkpoint_dirs, verify

    out = tmp_path / "run"
    # loss falls, so "greater is better" makes the FIRST evaluation the best one: the oldest
    # checkpoint, which a plain save_total_limit: 1 would delete
    cfg = validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                    "adapter": {"type": "full"},
                    "data": {"train": str(REPO / "examples/data/toy_train.jsonl"),
                             "eval": str(REPO / "examples/data/toy_eval.jsonl"),
                             "format": "alpaca", "max_length": 48},
                    "eval": {"best_metric": "loss", "greater_is_better": True},
                    "train": {"output_dir": str(out), "max_steps": 6, "save_steps": 2,
                              "eval_steps": 2, "save_total_limit": 1, "batch_size": 8,
                              "learning_rate": 5e-3, "report_to": ["none"],
                              "num_threads": 1}})
    result = run(cfg)
    assert result.metrics["best_step"] == 2
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-2", "checkpoint-6"]
    assert all(verify(p) is None for p in checkpoint_dirs(out))
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(out / "checkpoint-2")
    assert not list(out.glob(".partial-*"))
