"""Tracker defaults (environment), run names, the final-metrics helpers and run listing."""

from __future__ import annotations

import json
import sys
import types

import pytest


def _cfg(out, **train):
    from lmforge.config import validate

    return validate({"stage": "sft", "model": {"path": "builtin:tiny-llama"},
                     "data": {"train": "x.jsonl"}, "train": {"output_dir": str(out), **train}})


def test_run_name_defaults_to_the_output_folder(tmp_path):
    from lmforge.tracking import run_name, trackers

    assert run_name(_cfg(tmp_path / "exp-7")) == "exp-7"
    assert run_name(_cfg(tmp_path / "x", run_name="mine")) == "mine"
    assert trackers("none") == [] and trackers(["tensorboard", "none"]) == ["tensorboard"]
    assert _cfg(tmp_path).train.report_to == ["tensorboard"]


def test_wandb_goes_offline_without_a_key_but_respects_the_user(tmp_path, monkeypatch):
    from lmforge.tracking import setup

    monkeypatch.setitem(sys.modules, "wandb", types.ModuleType("wandb"))
    monkeypatch.setattr(setup, "_OURS", {})
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    setup.prepare(_cfg(tmp_path / "a"), ["wandb"])
    import os

    assert os.environ["WANDB_MODE"] == "offline"
    assert os.environ["WANDB_DIR"] == str((tmp_path / "a").resolve())
    setup.prepare(_cfg(tmp_path / "b"), ["wandb"])  # our own default follows the next run
    assert os.environ["WANDB_DIR"] == str((tmp_path / "b").resolve())
    monkeypatch.setenv("WANDB_DIR", "/elsewhere")  # the user's value is kept
    monkeypatch.setenv("WANDB_MODE", "online")
    setup.prepare(_cfg(tmp_path / "c"), ["wandb"])
    assert os.environ["WANDB_DIR"] == "/elsewhere" and os.environ["WANDB_MODE"] == "online"


def test_missing_tracker_package_names_the_extra(tmp_path, monkeypatch):
    from lmforge.errors import DependencyError
    from lmforge.tracking import setup

    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails
    with pytest.raises(DependencyError, match="wandb") as err:
        setup.prepare(_cfg(tmp_path), ["wandb"])
    assert "lmforge[tracking]" in err.value.hint


def test_mlflow_tags_keep_the_users_and_change_per_run(monkeypatch):
    from lmforge.tracking import setup

    monkeypatch.setattr(setup, "_OURS", {})
    monkeypatch.setenv("MLFLOW_TAGS", json.dumps({"team": "nlp"}))
    assert setup.user_tags() == {"team": "nlp"}
    monkeypatch.setenv("MLFLOW_TAGS", json.dumps({"team": "nlp", setup.RUN_UID: "1"}))
    setup._OURS["MLFLOW_TAGS"] = json.dumps({"team": "nlp", setup.RUN_UID: "1"})
    assert setup.user_tags() == {"team": "nlp"}  # ours (the uid) is not carried over
    assert setup.run_uid() == "1"


def test_flat_config_and_numbers(tmp_path):
    from lmforge.config import to_yaml
    from lmforge.tracking.final import flat_config, numbers

    (tmp_path / "lmforge_config.yaml").write_text(to_yaml(_cfg(tmp_path, learning_rate=0.01)))
    flat = flat_config(tmp_path)
    assert flat["train.learning_rate"] == "0.01" and flat["stage"] == "sft"
    assert numbers({"a": 1, "b": 2.5, "c": "x", "d": True}) == {"a": 1.0, "b": 2.5}


def _run_dir(root, name, metrics=None, lr=1e-4, checkpoint=False):
    from lmforge.config import to_yaml

    out = root / name
    out.mkdir(parents=True)
    (out / "lmforge_config.yaml").write_text(to_yaml(_cfg(out, learning_rate=lr)))
    if metrics is not None:
        (out / "metrics.json").write_text(json.dumps(metrics))
    if checkpoint:
        (out / "checkpoint-5").mkdir()
        (out / "checkpoint-5" / "lmforge_config.yaml").write_text("stage: sft\n")
    return out


def test_list_runs_finds_nested_runs_with_their_metrics(tmp_path):
    from lmforge.tracking.runs import list_runs

    _run_dir(tmp_path, "a", {"train_loss": 2.0, "eval_loss": 2.5, "global_step": 10})
    _run_dir(tmp_path, "sweep/trial_0", {"train_loss": 1.0, "eval_loss": 1.5}, lr=3e-3)
    _run_dir(tmp_path, "b", None, checkpoint=True)
    (tmp_path / "notes").mkdir()
    rows = {r["run"]: r for r in list_runs(tmp_path)}
    assert set(rows) == {"a", "sweep/trial_0", "b"}  # checkpoints are not runs
    assert rows["a"]["status"] == "done" and rows["a"]["eval_loss"] == 2.5
    assert rows["b"]["status"] == "incomplete" and rows["b"]["eval_loss"] is None
    assert rows["sweep/trial_0"]["learning_rate"] == 3e-3
    by_loss = [r["run"] for r in list_runs(tmp_path, sort="eval_loss")]
    assert by_loss == ["sweep/trial_0", "a", "b"]
