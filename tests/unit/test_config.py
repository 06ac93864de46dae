"""Run config: validation, all errors at once, did-you-mean, composition and overrides."""

from __future__ import annotations

import pytest
import yaml

from lmforge.config import compose, load, to_yaml, validate
from lmforge.config.loader import parse_override
from lmforge.errors import ConfigError

MIN = {"model": {"path": "builtin:tiny-llama"}}


def problems(tree: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(tree)
    return info.value.problems


def test_minimal_config_gets_defaults():
    cfg = validate(MIN)
    assert cfg.stage == "sft"
    assert cfg.adapter.type == "lora" and cfg.adapter.r == 8
    assert cfg.data.train_on == "all_assistant"
    assert cfg.train.report_to == ["tensorboard"]


def test_config_is_frozen():
    cfg = validate(MIN)
    with pytest.raises(Exception):
        cfg.train.learning_rate = 1.0


def test_all_problems_reported_at_once_with_did_you_mean():
    found = problems({"model": {"path": "x"}, "train": {"learing_rate": 1e-4},
                      "data": {"formt": "alpaca"}, "adapter": {"r": 0}})
    assert "train.learing_rate: unknown key; did you mean 'learning_rate'?" in found
    assert "data.formt: unknown key; did you mean 'format'?" in found
    assert any(p.startswith("adapter.r:") and "(got 0)" in p for p in found)
    assert len(found) == 3


def test_missing_model_path_and_bad_enum():
    found = problems({"stage": "sfft", "train": {}})
    assert "model: required key is missing" in found
    assert any(p.startswith("stage:") and "'sfft'" in p for p in found)


def test_method_block_must_match_stage():
    found = problems({**MIN, "stage": "sft", "pt": {"add_eos": True}})
    assert any("block 'pt:' is given but stage is 'sft'" in p for p in found)


def test_eval_fraction_range():
    assert validate({**MIN, "data": {"eval": 0.1}}).data.eval == 0.1
    found = problems({**MIN, "data": {"eval": 1.5}})
    assert any(p.startswith("data.eval:") for p in found)


def test_nested_unknown_key_suggestion():
    found = problems({"model": {"path": "x", "rope_scaling": {"type": "linear", "factr": 2}}})
    assert any("model.rope_scaling.factr: unknown key; did you mean 'factor'?" == p
               for p in found), found


@pytest.mark.parametrize("text,parts,value", [
    ("train.learning_rate=1e-4", ["train", "learning_rate"], 1e-4),
    ("data.packing=true", ["data", "packing"], True),
    ("adapter.target_modules=[q_proj,v_proj]", ["adapter", "target_modules"], ["q_proj", "v_proj"]),
    ("model.path=some/dir", ["model", "path"], "some/dir"),
])
def test_override_values_are_yaml_scalars(text, parts, value):
    assert parse_override(text) == (parts, value)


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        parse_override("train.learning_rate")


def _write(path, tree):
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def test_data_and_model_files_compose_with_scoped_overrides(tmp_path):
    d = _write(tmp_path / "d.yaml", {"data": {"train": "x.jsonl", "max_length": 256}})
    m = _write(tmp_path / "m.yaml", {"model": {"path": "builtin:tiny-llama"},
                                     "train": {"learning_rate": 1e-4}})
    cfg = load(data=d, model=m, data_overrides=["data.max_length=64"],
               model_overrides=["train.learning_rate=3e-4"], overrides=["train.seed=7"])
    assert cfg.data.max_length == 64
    assert cfg.train.learning_rate == 3e-4
    assert cfg.train.seed == 7
    assert cfg.data.train == "x.jsonl"


def test_same_key_in_data_and_model_file_is_reported(tmp_path):
    d = _write(tmp_path / "d.yaml", {"train": {"epochs": 2}})
    m = _write(tmp_path / "m.yaml", {"model": {"path": "p"}, "train": {"epochs": 3}})
    with pytest.raises(ConfigError, match="train.epochs: set in both"):
        compose(data=d, model=m)


def test_scoped_override_without_its_file_is_an_error(tmp_path):
    m = _write(tmp_path / "m.yaml", MIN)
    with pytest.raises(ConfigError, match="--D. overrides need a data config"):
        compose(model=m, data_overrides=["data.max_length=3"])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        compose(config=str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  path: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml:.*not valid YAML"):
        compose(config=str(bad))


def test_override_into_scalar_is_reported(tmp_path):
    m = _write(tmp_path / "m.yaml", MIN)
    with pytest.raises(ConfigError, match="is a str, not a mapping"):
        compose(config=m, overrides=["model.path.x=1"])


def test_resolved_yaml_round_trips():
    cfg = validate({**MIN, "train": {"learning_rate": 2e-4}, "data": {"packing": True}})
    again = validate(yaml.safe_load(to_yaml(cfg)))
    assert again == cfg
