"""Stage grpo runs on lmforge's trainer path (``training.trainer.build_trainer``) like every other
Trainer stage: manifested checkpoints with JSON training arguments (no pickle), ``train.resume:
auto`` continuing from the newest checkpoint, the NaN/Inf guard and signal stop installed, and
the trained (completion) tokens counted."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerCallback

from lmforge import stages
from tests.integration.rl_toys import config, example, prompt_data, write_rewards

MAX_NEW = 8  # grpo.max_new_tokens of the example


def _config(tmp_path, **train):
    rewards = write_rewards(tmp_path)
    return config(example("grpo"), tmp_path, data=prompt_data(tmp_path, 8),
                  grpo={"reward_functions": [f"{rewards}:digit_share"]},
                  train={"batch_size": 8, "logging_steps": 1, "report_to": ["none"],
                         "seed": 3, **train})


class Steps(TrainerCallback):
    """Which optimizer steps this process really ran."""

    def __init__(self, crash_after_save: int | None = None):
        self.ran: list[int] = []
        self.crash_after_save = crash_after_save

    def on_step_end(self, args, state, control, **kwargs):
        self.ran.append(state.global_step)

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.crash_after_save:
            raise RuntimeError("simulated crash after the checkpoint")


def test_grpo_checkpoints_are_manifested_json_and_tokens_counted(tmp_path):
    from lmforge.training.checkpoints import verify

    cfg = _config(tmp_path, max_steps=2, save_steps=2)
    probe = Steps()
    result = stages.run(cfg, callbacks=[probe])
    ckpt = result.output_dir / "checkpoint-2"
    assert (ckpt / "lmforge_manifest.json").is_file()
    assert verify(ckpt) is None, verify(ckpt)
    assert (ckpt / "training_args.json").is_file()
    assert not list(result.output_dir.rglob("training_args.bin"))
    args = json.loads((ckpt / "training_args.json").read_text())
    assert args["num_generations"] == 4 and args["max_steps"] == 2
    assert probe.ran == [1, 2]
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    # the completion tokens trained: trl logs each step's mean completion length (no completion
    # is masked here: grpo.mask_truncated_completions is off), batch_size completions per step
    lengths = [h["completions/mean_length"] for h in result.log_history
               if "completions/mean_length" in h]
    assert len(lengths) == 2
    assert 0 < metrics["train_tokens"] <= 2 * 8 * MAX_NEW
    assert metrics["train_tokens"] == round(sum(n * 8 for n in lengths))


def test_grpo_trainer_has_the_fault_guard_and_signal_stop(tmp_path, monkeypatch):
    import lmforge.training.trainer as T
    from lmforge.training.faults import NumericGuard, SignalStop

    built = []
    original = T.build_trainer

    def recording(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(T, "build_trainer", recording)
    stages.run(_config(tmp_path, max_steps=1, save_steps=1))
    assert len(built) == 1
    callbacks = [type(c) for c in built[0].callback_handler.callbacks]
    assert NumericGuard in callbacks and SignalStop in callbacks
    assert type(built[0]).__name__ == "LmforgeGRPOTrainer"


def test_grpo_resume_auto_continues_from_the_checkpoint(tmp_path):
    cfg = _config(tmp_path, max_steps=4, save_steps=2, resume="auto")
    first = Steps(crash_after_save=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        stages.run(cfg, callbacks=[first])
    assert first.ran == [1, 2]
    assert (tmp_path / "out" / "checkpoint-2" / "lmforge_manifest.json").is_file()
    second = Steps()
    result = stages.run(cfg, callbacks=[second])
    assert second.ran == [3, 4], second.ran  # not a fresh start at step 1
    assert result.metrics["global_step"] == 4
    assert sorted(p.name for p in result.output_dir.glob("checkpoint-*")) == \
        ["checkpoint-2", "checkpoint-4"]
