"""lmforge validate finds every problem in one round: a config with mistakes in every layer
(schema, cross-section, files, rows and columns, templates, trackers and packages, train.extra
and the arguments object, adapter module names) gets all of them in one report."""

from __future__ import annotations

import json

import pytest

from lmforge.cli import main
from lmforge.commands import _preflight
from tests.conftest import REPO, write_jsonl

MISTAKES = """stage: sft
cutoff_len: 128                                # 1 a LLaMA-Factory name
model:
  path: {model}
  template: qwen3                              # 2 not a built-in template
adapter:
  type: lora
  target_modules: [q_proj, nope_proj]          # 3 no such module
  modules_to_save: [lm_haed]                   # 4 no such module
data:
  train: train.jsonl                           # 5 its third row has no output
  eval: missing_eval.jsonl                     # 6 not found
  formt: alpaca                                # 7 typo
  columns: {{instrction: question}}            # 8 not a field of alpaca
train:
  output_dir: out
  learing_rate: 1.0e-4                         # 9 typo
  per_device_train_batch_size: 2               # 10 a TrainingArguments name
  batch_size: 0                                # 11 must be >= 1
  report_to: [tensorbaord, wandb]              # 12 typo, 13 wandb not installed
  deepspeed: zero2                             # 14 deepspeed not installed
  extra: {{not_an_argument: 1}}                # 15 TrainingArguments has no such field
pt: {{add_eos: true}}                          # 16 a block of another stage
"""


@pytest.fixture
def project(tmp_path, monkeypatch, tiny_model_dir):
    rows = [json.loads(x) for x in (REPO / "examples/data/toy_train.jsonl").read_text()
            .splitlines()[:6]]
    rows[2] = {"instruction": "no answer here", "input": ""}
    write_jsonl(tmp_path / "train.jsonl", rows)
    (tmp_path / "run.yaml").write_text(MISTAKES.format(model=tiny_model_dir))
    # the same report whatever this machine has installed
    monkeypatch.setattr(_preflight, "installed", lambda m: m not in ("wandb", "deepspeed"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_sixteen_mistakes_in_one_report(project, capsys):
    assert main(["validate", "run.yaml"]) == 2
    err = capsys.readouterr().err
    expected = [
        "cutoff_len: unknown key; cutoff_len → data.max_length",
        "model.template: unknown template 'qwen3'; did you mean 'qwen'?",
        "adapter.target_modules: the model has no module 'nope_proj'",
        "adapter.modules_to_save: the model has no module 'lm_haed'; did you mean 'lm_head'?",
        "train.jsonl:3",
        "data.eval: file 'missing_eval.jsonl' not found",
        "data.formt: unknown key; did you mean 'format'?",
        "data.columns.instrction: not a field of format 'alpaca'",
        "train.learing_rate: unknown key; did you mean 'learning_rate'?",
        "train.per_device_train_batch_size: unknown key; per_device_train_batch_size → "
        "train.batch_size",
        "train.batch_size:",
        "train.report_to: unknown tracker 'tensorbaord'; did you mean 'tensorboard'?",
        "train.report_to: wandb needs the package 'wandb', which is not installed: "
        "pip install 'lmforge[tracking]'",
        "train.deepspeed needs the package 'deepspeed', which is not installed",
        "not_an_argument",
        "block 'pt:' is given but stage is 'sft'",
    ]
    lines = [line.strip() for line in err.splitlines()]
    missing = [e for e in expected if not any(e in line for line in lines)]
    assert not missing, f"not reported: {missing}\n{err}"
    assert f"invalid configuration: {len(expected)} problems" in err, err


def test_fixed_config_is_ok(project, capsys):
    write_jsonl(project / "eval.jsonl", [{"instruction": "a", "input": "", "output": "b"}])
    rows = (REPO / "examples/data/toy_train.jsonl").read_text().splitlines()[:6]
    (project / "train.jsonl").write_text("\n".join(rows) + "\n")
    (project / "run.yaml").write_text(
        "model: {path: builtin:tiny-llama, template: qwen}\n"
        "adapter: {type: lora, target_modules: [q_proj, v_proj], modules_to_save: [lm_head]}\n"
        "data: {train: train.jsonl, eval: eval.jsonl, format: alpaca, max_length: 128}\n"
        "train: {output_dir: out, report_to: [tensorboard], max_steps: 2}\n")
    assert main(["validate", "run.yaml"]) == 0, capsys.readouterr().err


def test_hub_ids_registry_entries_and_comma_strings(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "info.json").write_text(json.dumps({"remote": {"hf_hub_url": "org/data"}}))
    (tmp_path / "run.yaml").write_text(
        "model: {path: nobody-org/not-cached-model}\n"
        "adapter: {type: lora, target_modules: 'q_proj,v_proj'}\n"
        "data: {registry: info.json, train: [remote]}\n"
        "train: {output_dir: out, report_to: [none]}\n")
    assert main(["validate", "run.yaml"]) == 2
    err = capsys.readouterr().err
    assert "hub id 'nobody-org/not-cached-model' is not in the local cache" in err
    assert "entry 'remote' uses hf_hub_url, which lmforge does not download" in err
    assert "adapter.target_modules: 'q_proj,v_proj' is one string" in err
    assert "[q_proj, v_proj]" in err
