"""Numerical faults through the real sft stage (tiny model, CPU): a poisoned training row makes the
loss (or only the gradient) NaN whenever its batch is trained.

- nan_policy skip: that step's update is skipped (weights and LR schedule untouched), counted in
  metrics.json, the warning names the row as file:line, and training carries on;
- N bad steps in a row, or nan_policy stop: a TrainingError naming the step and the rows;
- a loss spike is logged with its batch.
The poison is a new special token; a forward hook turns the loss of any batch holding it into NaN.
"""

from __future__ import annotations

import math

import pytest
from transformers import TrainerCallback

from tests.conftest import write_jsonl

MARK = "<|poison|>"
POISON_LINE = 5


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rows = [{"instruction": f"Name item {i}.", "input": "", "output": f"item {i} is blue"}
            for i in range(16)]
    rows[POISON_LINE - 1]["output"] = f"{MARK} poisoned"
    return write_jsonl(tmp_path_factory.mktemp("nan") / "train.jsonl", rows)


def _cfg(model_dir, data_file, out, **train):
    from lmforge.config import validate

    t = {"output_dir": str(out), "max_steps": 8, "batch_size": 4, "save_steps": 100,
         "learning_rate": 1e-2, "lr_scheduler": "linear", "logging_steps": 1,
         "report_to": ["none"], "num_threads": 1, "seed": 1}
    t.update(train)
    return validate({"stage": "sft", "model": {"path": str(model_dir),
                                                "new_special_tokens": [MARK]},
                     "adapter": {"type": "full"},
                     "data": {"train": str(data_file), "format": "alpaca", "max_length": 48},
                     "train": t})


class Poison(TrainerCallback):
    """NaN loss (``mode='loss'``), NaN gradients only (``'grad'``), or x``scale`` loss (a spike)
    for batches holding the marker (``always``: every batch); records what each step did."""

    def __init__(self, mode="loss", always=False, scale=float("nan")):
        self.mode, self.always, self.scale = mode, always, scale
        self.poisoned_steps: list[int] = []
        self.changed: dict[int, bool] = {}
        self.sched: dict[int, int] = {}

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kw):
        self.mark = processing_class.convert_tokens_to_ids(MARK)
        self.state = state
        model.register_forward_hook(self._hook, with_kwargs=True)
        self.param = next(p for p in model.parameters() if p.requires_grad)
        if self.mode == "grad":
            self.param.register_hook(lambda g: g * float("nan") if self.hit else g)

    def _hook(self, module, args, kwargs, output):
        ids = kwargs.get("input_ids")
        self.hit = self.always or bool((ids == self.mark).any())
        if self.hit and module.training:
            self.poisoned_steps.append(self.state.global_step + 1)
            if self.mode != "grad":
                # with train.fast_loss the loss is computed outside the model from the logits
                key = "loss" if output.get("loss") is not None else "logits"
                output[key] = output[key] * self.scale
        return output

    def on_step_begin(self, args, state, control, **kw):
        self.before = self.param.detach().clone()

    def on_step_end(self, args, state, control, lr_scheduler=None, **kw):
        self.changed[state.global_step] = not bool((self.param.detach() == self.before).all())
        self.sched[state.global_step] = lr_scheduler.last_epoch


def _run(cfg, callback):
    from lmforge.stages import run

    return run(cfg, callbacks=[callback])


@pytest.mark.parametrize("mode", ["loss", "grad"])
def test_a_nan_step_is_skipped_counted_and_named(tiny_model_dir, data_file, tmp_path,
                                                 caplog, mode):
    poison = Poison(mode)
    result = _run(_cfg(tiny_model_dir, data_file, tmp_path / mode), poison)
    bad = sorted(set(poison.poisoned_steps))
    assert len(bad) == 2  # 4 batches an epoch, 8 steps: the poisoned row is trained twice
    assert result.metrics["train_skipped_steps"] == 2
    assert result.metrics["global_step"] == 8
    for step in range(1, 9):  # weights and LR schedule move on every step but the bad ones
        assert poison.changed[step] == (step not in bad), step
        assert poison.sched[step] - poison.sched.get(step - 1, 0) == (step not in bad), step
    assert f"train.jsonl:{POISON_LINE}" in caplog.text
    assert f"non-finite {'loss' if mode == 'loss' else 'gradient'} at step {bad[0]}" in caplog.text
    assert all(math.isfinite(h["loss"]) for h in result.log_history if "loss" in h)
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / mode / "model.safetensors"))
    assert all(bool(v.isfinite().all()) for v in weights.values())


def test_bad_steps_in_a_row_stop_with_an_error_naming_the_batch(tiny_model_dir, data_file,
                                                                tmp_path):
    from lmforge.errors import TrainingError

    with pytest.raises(TrainingError, match="3 steps in a row, the last at step 3") as err:
        _run(_cfg(tiny_model_dir, data_file, tmp_path / "a", max_bad_steps=3),
             Poison(always=True))
    assert "train.jsonl:" in str(err.value)

    with pytest.raises(TrainingError, match=f"at step \\d+; batch: .*train.jsonl:{POISON_LINE}"):
        _run(_cfg(tiny_model_dir, data_file, tmp_path / "b", nan_policy="stop"),
             Poison())


def test_a_loss_spike_is_logged_with_its_batch(tiny_model_dir, data_file, tmp_path,
                                               caplog):
    poison = Poison(scale=50.0)
    # fast_loss off: the spike must be exactly x50 of the loss (scaled inside the model)
    result = _run(_cfg(tiny_model_dir, data_file, tmp_path / "spike",
                                    max_steps=16, learning_rate=1e-3, fast_loss=False), poison)
    from lmforge.training.faults import SPIKE_WARMUP

    spiked = [s for s in sorted(set(poison.poisoned_steps)) if s > SPIKE_WARMUP]
    assert spiked and f"loss spike at step {spiked[0]}" in caplog.text
    assert f"train.jsonl:{POISON_LINE}" in caplog.text
    assert result.metrics["train_loss_spikes"] >= 1 and result.metrics["train_skipped_steps"] == 0
