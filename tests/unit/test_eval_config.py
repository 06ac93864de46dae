"""The eval: config section, including the seeds' metrics alias."""

from __future__ import annotations

import pytest

from lmforge.config import validate
from lmforge.config.eval import EvalConfig
from lmforge.errors import ConfigError


def _run(evals: dict):
    return validate({"model": {"path": "builtin:tiny-llama"}, "eval": evals})


def test_seed_alias_expands_to_the_explicit_form():
    cfg = _run({"metrics": {"name": "f1", "eval_calculate": True}})
    assert cfg.eval.metrics == ["f1"]
    assert cfg.eval.during_training is True and cfg.eval.best_metric == "f1"
    assert cfg.eval.best_key == "eval_f1" and cfg.eval.higher_is_better


def test_explicit_keys_win_over_the_alias():
    e = EvalConfig.model_validate({"metrics": {"name": "f1", "eval_calculate": False},
                                   "best_metric": "accuracy"})
    assert e.during_training is False and e.best_metric == "accuracy"
    assert e.generation_metrics == ["f1", "accuracy"]


def test_bad_values_are_reported_with_hints():
    with pytest.raises(ConfigError, match="did you mean 'rouge'"):
        _run({"metrics": ["rogue"]})
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        _run({"answer_pattern": "答案是：([A-D]"})
    with pytest.raises(ConfigError, match="best_metric: unknown metric 'f2'"):
        _run({"best_metric": "f2"})
    with pytest.raises(ConfigError, match="eval_calculate"):
        _run({"metrics": {"metric": "f1"}})
    with pytest.raises(ConfigError, match="do_sample"):
        _run({"generation": {"num_return_sequences": 3}})


def test_direction_defaults():
    assert not EvalConfig(best_metric="loss").higher_is_better
    assert not EvalConfig(best_metric="eval_perplexity").higher_is_better
    assert EvalConfig(best_metric="rougeL").higher_is_better
    assert not EvalConfig(best_metric="rougeL", greater_is_better=False).higher_is_better
    # a user metric's own keys may be chosen
    assert EvalConfig(metrics=["pkg.mod:score"], best_metric="score").best_key == "eval_score"
    assert EvalConfig(best_metric="loss").generation_metrics == []
