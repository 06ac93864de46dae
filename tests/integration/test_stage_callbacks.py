"""``stages.run(cfg, callbacks=...)``: the one way to add TrainerCallbacks to a run (no module-global
list). Every stage takes them; stage ppo, with its own loop, fires the events it has (rl/events.py)
with the Trainer's meaning, honours should_save / should_training_stop, and refuses up front a
callback that needs an event it never fires."""

from __future__ import annotations

import importlib
import inspect

import pytest
from transformers import TrainerCallback

from lmforge import stages
from lmforge.errors import ConfigError
from lmforge.training.callbacks import StopAtStep
from tests.integration.rl_toys import config, example, prompt_data, write_rewards


def test_every_stage_run_takes_callbacks_by_keyword():
    from lmforge.training import trainer

    assert not hasattr(trainer, "extra_callbacks")
    for stage, module in stages.STAGES.items():
        parameter = inspect.signature(importlib.import_module(module).run).parameters.get(
            "callbacks")
        assert parameter is not None, stage
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default == (), stage


class Record(TrainerCallback):
    """The events a run fired, with the step the state said, and the metrics handed over."""

    def __init__(self, save_at: int | None = None):
        self.events: list[tuple[str, int]] = []
        self.evaluated: list[dict] = []
        self.logged: list[dict] = []
        self.save_at = save_at

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        assert model is not None and state.max_steps > 0
        self.events.append(("train_begin", state.global_step))

    def on_step_begin(self, args, state, control, **kwargs):
        self.events.append(("step_begin", state.global_step))

    def on_step_end(self, args, state, control, **kwargs):
        self.events.append(("step_end", state.global_step))
        if state.global_step == self.save_at:
            control.should_save = True
        return control

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evaluated.append(dict(metrics, step=state.global_step))

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logged.append(logs)

    def on_save(self, args, state, control, **kwargs):
        self.events.append(("save", state.global_step))

    def on_train_end(self, args, state, control, **kwargs):
        self.events.append(("train_end", state.global_step))


def _ppo(tmp_path, **train):
    from tests.conftest import write_jsonl
    from tests.integration.rl_toys import prompt_rows

    rewards = write_rewards(tmp_path)
    evals = write_jsonl(tmp_path / "eval.jsonl", prompt_rows(4, seed=5))
    return config(example("ppo"), tmp_path, data=dict(prompt_data(tmp_path, 8), eval=str(evals)),
                  ppo={"reward_functions": [f"{rewards}:digit_share"], "mini_batch_size": 4},
                  train={"batch_size": 4, "report_to": ["none"], "logging_steps": 1, **train})


def test_ppo_fires_the_trainer_events_and_honours_save_and_stop(tmp_path):
    record = Record(save_at=1)
    cfg = _ppo(tmp_path, max_steps=4, save_steps=2, eval_steps=2)
    result = stages.run(cfg, callbacks=[record, StopAtStep(2)])
    assert record.events == [("train_begin", 0), ("step_begin", 0), ("step_end", 1), ("save", 1),
                             ("step_begin", 1), ("step_end", 2), ("save", 2), ("train_end", 2)]
    assert result.metrics["global_step"] == 2  # StopAtStep(2) ended the 4-step run
    assert sorted(p.name for p in result.output_dir.glob("checkpoint-*")) == \
        ["checkpoint-1", "checkpoint-2"]  # 1: asked by the callback, 2: the schedule
    assert [e["step"] for e in record.evaluated] == [2]
    assert "eval_reward_mean" in record.evaluated[0]
    assert [h["step"] for h in record.logged] == [1, 2]
    assert record.logged == result.log_history


def test_ppo_refuses_a_callback_needing_an_event_its_loop_lacks(tmp_path):
    class PerOptimizerStep(TrainerCallback):
        def on_optimizer_step(self, args, state, control, **kwargs):
            pass

    with pytest.raises(ConfigError, match="PerOptimizerStep.*on_optimizer_step"):
        stages.run(_ppo(tmp_path, max_steps=1), callbacks=[PerOptimizerStep()])
    assert not list((tmp_path / "out").glob("checkpoint-*"))


def test_sweep_pruning_stops_a_ppo_trial(tmp_path):
    from lmforge.sweep.trial import PruningCallback

    class Trial:
        number = 0
        reports: list = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return True

    trial = Trial()
    callback = PruningCallback(trial, "eval_reward_mean")
    result = stages.run(_ppo(tmp_path, max_steps=4, save_steps=2, eval_steps=2),
                        callbacks=[callback])
    assert callback.pruned and [s for s, _ in trial.reports] == [2]
    assert result.metrics["global_step"] == 2
