"""AdaLoRA's rank schedule is checked against the run length up front (issue 18, item 5): peft
crashed with ``kthvalue(): selected number k out of range`` (r == target_r: nothing to prune) or a
KeyError (no step scored importance before the final allocation)."""

from __future__ import annotations

import pytest
from transformers import TrainerCallback

from lmforge.errors import ConfigError
from tests.integration.test_adapter_training import sft_config


class Steps(TrainerCallback):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def test_the_issue_config_is_refused_before_any_model_is_loaded(tmp_path):
    with pytest.raises(ConfigError) as err:
        sft_config(tmp_path, "a", {"type": "adalora", "r": 4, "alpha": 8}, steps=2)
    (line,) = err.value.problems
    assert line.startswith("adapter: ") and "target_r (4) must be below r (4)" in line
    assert "target_r: 2" in line  # a value that works


def test_a_run_too_short_for_the_schedule_names_the_keys_and_what_works(tmp_path):
    with pytest.raises(ConfigError) as err:
        sft_config(tmp_path, "a", {"type": "adalora", "r": 4, "target_r": 2, "tinit": 2,
                                   "tfinal": 1}, steps=3)
    (line,) = err.value.problems
    assert line.startswith("adapter.tfinal: ") and "needs at least 4 optimizer steps" in line
    assert "train.max_steps to at least 4" in line and "adapter.tinit: 0, adapter.tfinal: 1" in line
    with pytest.raises(ConfigError, match="train.max_steps to at least 2"):
        sft_config(tmp_path, "b", {"type": "adalora", "r": 4, "target_r": 2}, steps=1)
    with pytest.raises(ConfigError, match="adapter.total_step to at least 4"):
        sft_config(tmp_path, "c", {"type": "adalora", "r": 4, "target_r": 2, "tinit": 2,
                                   "tfinal": 1, "total_step": 3}, steps=10)


def test_the_shortest_valid_schedule_trains(tmp_path):
    from lmforge import stages

    cfg = sft_config(tmp_path, "ok", {"type": "adalora", "r": 4, "target_r": 2}, steps=2)
    result = stages.run(cfg)
    assert result.metrics["global_step"] == 2


def test_epochs_only_are_checked_at_train_start_before_any_step(tmp_path):
    """12 examples, batch 12, one epoch: one optimizer step, known only once training starts."""
    from lmforge import stages

    cfg = sft_config(tmp_path, "e", {"type": "adalora", "r": 4, "target_r": 2}, steps=-1,
                     train={"epochs": 1, "batch_size": 12})
    steps = Steps()
    with pytest.raises(ConfigError) as err:
        stages.run(cfg, callbacks=[steps])
    assert steps.steps == 0
    (line,) = err.value.problems
    assert "train.epochs: 1 (1 optimizer steps)" in line
    assert "train.max_steps (or adapter.total_step) to at least 2" in line
