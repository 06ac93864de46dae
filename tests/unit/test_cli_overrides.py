"""Overrides reach every key, top-level ones included, with the same YAML parsing; a key given
twice in a YAML file is an error naming both lines."""

from __future__ import annotations

import pytest
import yaml

from lmforge.cli import build_parser, main
from lmforge.commands._runargs import extract_overrides, value_options
from lmforge.config import compose, load
from lmforge.config.loader import parse_override
from lmforge.errors import ConfigError
from tests.conftest import REPO

RUN = f"""stage: sft
model: {{path: builtin:tiny-llama}}
adapter: {{type: full}}
data: {{train: {REPO / 'examples/data/toy_train.jsonl'}, format: alpaca, max_length: 64}}
train: {{output_dir: out, max_steps: 2}}
"""


@pytest.fixture
def run_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "run.yaml"
    path.write_text(RUN)
    return path


def test_top_level_keys_and_whole_blocks_are_overridable(run_file, capsys):
    code = main(["validate", str(run_file), "stage=kto", "adapter={type: lora, r: 4}",
                 "train.max_steps=3", "data.format=kto",
                 f"data.train={REPO / 'examples/data/kto_train.jsonl'}", "--print"])
    out = capsys.readouterr()
    assert code == 0, out.err
    out = out.out
    tree = yaml.safe_load(out[out.index("stage:"):].removesuffix("ok\n"))
    assert tree["stage"] == "kto"
    # the mapping replaces the block: r from the override, the rest back to the defaults
    assert tree["adapter"]["type"] == "lora" and tree["adapter"]["r"] == 4
    assert tree["train"]["max_steps"] == 3


def test_dotted_key_into_a_block_keeps_its_other_keys(run_file):
    cfg = load(str(run_file), overrides=["adapter.type=lora", "stage=sft"])
    assert cfg.adapter.type == "lora" and cfg.data.max_length == 64


def test_unknown_top_level_override_gets_did_you_mean(run_file, capsys):
    assert main(["validate", str(run_file), "stgae=dpo"]) == 2
    assert "stgae: unknown key; did you mean 'stage'?" in capsys.readouterr().err


def test_option_values_and_arguments_after_double_dash_are_not_overrides():
    commands: dict = {}
    build_parser(commands)
    options = value_options(commands["validate"])
    assert "--data" in options and "--print" not in options
    rest, ov = extract_overrides(["validate", "--data", "a=b.yaml", "stage=dpo", "--D.x=1",
                                  "--", "lora_rank=8"], options)
    assert rest == ["validate", "--data", "a=b.yaml", "--", "lora_rank=8"]
    assert ov.merged == ["stage=dpo"] and ov.data == ["x=1"]


def test_scoped_top_level_override(tmp_path):
    d = tmp_path / "d.yaml"
    d.write_text("data: {train: t.jsonl}\n")
    m = tmp_path / "m.yaml"
    m.write_text("model: {path: builtin:tiny-llama}\n")
    tree = compose(data=str(d), model=str(m), model_overrides=["stage=dpo"])
    assert tree["stage"] == "dpo"


def test_duplicate_yaml_keys_name_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("model: {path: builtin:tiny-llama}\ntrain:\n  seed: 1\n  learning_rate: 1e-4\n"
                    "  seed: 2\nstage: sft\nstage: dpo\n")
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert info.value.problems == [
        f"{path}:5: key 'seed' is given twice (first at line 3); keep one of them",
        f"{path}:7: key 'stage' is given twice (first at line 6); keep one of them"]


def test_yaml_merge_keys_may_repeat_a_key(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {seed: 1, learning_rate: 1e-3}\nmodel: {path: builtin:tiny-llama}\n"
                    "train:\n  <<: *b\n  seed: 2\n")
    tree = compose(str(path))
    assert tree["train"] == {"seed": 2, "learning_rate": 1e-3}


def test_duplicate_key_in_an_override_value():
    with pytest.raises(ConfigError, match="given twice"):
        parse_override("adapter={r: 1, r: 2}")
