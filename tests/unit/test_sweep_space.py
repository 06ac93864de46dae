"""Search-space parsing, trial configs from dotted paths, the pruning callback, study identity."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lmforge.commands._runargs import Overrides
from lmforge.errors import ConfigError


def test_space_kinds_parse_and_suggest():
    import optuna

    from lmforge.sweep.space import parse_space, suggest

    dims = parse_space({"train.learning_rate": {"log_uniform": [1e-5, 1e-3]},
                        "train.warmup_ratio": {"uniform": [0.0, 0.2]},
                        "train.batch_size": {"int": [2, 8], "step": 2},
                        "adapter.r": {"choice": [4, 8, 16]}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        values = suggest(study.ask(), dims)
        assert 1e-5 <= values["train.learning_rate"] <= 1e-3
        assert 0.0 <= values["train.warmup_ratio"] <= 0.2
        assert values["train.batch_size"] in (2, 4, 6, 8)
        assert values["adapter.r"] in (4, 8, 16)


@pytest.mark.parametrize("tree,message", [
    ({"train.learning_rate": {"log_uniform": [0, 1e-3]}}, "low > 0"),
    ({"train.learning_rate": {"uniform": [1e-3, 1e-5]}}, "below high"),
    ({"train.learning_rate": {"normal": [0, 1]}}, "one of log_uniform"),
    ({"train.batch_size": {"int": [2.5, 8]}}, "an integer"),
    ({"adapter.r": {"choice": []}}, "non-empty list"),
    ({"adapter.r": {"choice": [4], "step": 2}}, "unexpected keys"),
    ({"learning_rate": {"choice": [1]}}, "dotted config path"),
    ({}, "mapping"),
])
def test_bad_space_entries_are_named(tree, message):
    from lmforge.sweep.space import parse_space

    with pytest.raises(ConfigError, match=message):
        parse_space(tree, "space.yaml")


def test_grid_needs_discrete_dimensions():
    from lmforge.sweep.space import grid, parse_space

    assert grid(parse_space({"adapter.r": {"choice": [4, 8]}, "train.batch_size":
                             {"int": [2, 6], "step": 2}})) == {"adapter.r": [4, 8],
                                                               "train.batch_size": [2, 4, 6]}
    with pytest.raises(ConfigError, match="grid"):
        grid(parse_space({"train.learning_rate": {"uniform": [0.1, 0.2]}}))


def _setup(tmp_path, space, metric="eval_loss", data_eval=True):
    from lmforge.sweep.space import parse_space
    from lmforge.sweep.trial import Setup

    config = tmp_path / "run.yaml"
    config.write_text("stage: sft\nmodel: {path: 'builtin:tiny-llama'}\n"
                      f"data: {{train: x.jsonl{', eval: 0.1' if data_eval else ''}}}\n"
                      "train: {output_dir: runs/base, learning_rate: 1.0e-4}\n")
    return Setup(str(config), None, None, Overrides(merged=["train.max_steps=7"]),
                 parse_space(space), tmp_path / "sweep", metric)


def test_trial_config_applies_values_overrides_and_its_directory(tmp_path):
    from lmforge.sweep.trial import check_setup, trial_config

    setup = _setup(tmp_path, {"train.learning_rate": {"choice": [0.01]}})
    check_setup(setup)
    cfg = trial_config(setup, {"train.learning_rate": 0.01, "adapter.r": 4},
                       tmp_path / "sweep" / "trial_3")
    assert cfg.train.learning_rate == 0.01 and cfg.adapter.r == 4 and cfg.train.max_steps == 7
    assert cfg.train.output_dir.endswith("trial_3") and cfg.train.resume == "auto"


def test_setup_errors_surface_before_any_trial(tmp_path):
    from lmforge.sweep.trial import check_setup

    with pytest.raises(ConfigError, match="learnin_rate"):
        check_setup(_setup(tmp_path, {"train.learnin_rate": {"choice": [0.1]}}))
    with pytest.raises(ConfigError, match="no eval data"):
        check_setup(_setup(tmp_path, {"train.learning_rate": {"choice": [0.1]}},
                           data_eval=False))


def test_pruning_callback_reports_and_stops():
    import optuna

    from lmforge.sweep.trial import PruningCallback

    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    trial = study.ask()
    callback = PruningCallback(trial, "eval_loss")
    state = SimpleNamespace(is_world_process_zero=True, global_step=3)
    control = SimpleNamespace(should_training_stop=False)
    callback.on_evaluate(None, state, control, metrics={"eval_accuracy": 0.5})
    assert not callback.pruned  # another metric: nothing reported
    callback.on_evaluate(None, state, control, metrics={"eval_loss": 0.5})
    assert not callback.pruned and not control.should_training_stop
    state.global_step = 6
    callback.on_evaluate(None, state, control, metrics={"eval_loss": 2.0})
    assert callback.pruned and control.should_training_stop
    assert study.trials[0].intermediate_values == {3: 0.5, 6: 2.0}
