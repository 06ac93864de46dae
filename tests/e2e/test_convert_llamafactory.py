"""lmforge convert llamafactory: LLaMA-Factory's example train configs (sft, dpo, kto, pt; the
shape of examples/train_lora/qwen3_lora_*.yaml, pointed at the tiny model and local data)
convert, validate, and the SFT one trains; every key that has no lmforge equivalent is listed."""

from __future__ import annotations

import json

import pytest
import yaml

from lmforge.cli import main
from tests.conftest import REPO, write_jsonl

COMMON = """### model
model_name_or_path: {model}
trust_remote_code: true

### method
stage: {stage}
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all
{method}
### dataset
dataset: {dataset}
{template}cutoff_len: 128
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 1
dataloader_num_workers: 0

### output
output_dir: saves/{stage}
logging_steps: 1
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]

### train
per_device_train_batch_size: 2
gradient_accumulation_steps: 2
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: false
ddp_timeout: 180000000
resume_from_checkpoint: null

### eval
val_size: 0.1
per_device_eval_batch_size: 1
eval_strategy: steps
eval_steps: 500
"""
CASES = {
    "sft": dict(dataset="toy", template="template: qwen3_nothink\n", method=""),
    "dpo": dict(dataset="pairs", template="template: llama3\n",
                method="pref_beta: 0.1\npref_loss: sigmoid  # choices: [sigmoid (dpo), orpo, "
                "simpo]\n"),
    "kto": dict(dataset="kto_demo", template="template: llama3\n", method="pref_beta: 0.1\n"),
    "pt": dict(dataset="c4_demo", template="", method=""),
}


@pytest.fixture
def factory_dir(tmp_path, monkeypatch, tiny_model_dir):
    """A directory laid out like a LLaMA-Factory checkout: data/dataset_info.json + files."""
    data = tmp_path / "data"
    rows = [json.loads(x) for x in (REPO / "examples/data/toy_train.jsonl").read_text()
            .splitlines()]
    write_jsonl(data / "toy.json", rows)
    pref = [json.loads(x) for x in (REPO / "examples/data/pref_train.jsonl").read_text()
            .splitlines()]
    write_jsonl(data / "pairs.json", [{"instruction": r["prompt"], "input": "",
                                        "chosen": r["chosen"], "rejected": r["rejected"]}
                                       for r in pref if "prompt" in r][:24])
    kto = [json.loads(x) for x in (REPO / "examples/data/kto_train.jsonl").read_text()
           .splitlines()]
    write_jsonl(data / "kto.json", [{"messages": [
        {"role": "user", "content": r["prompt"]},
        {"role": "assistant", "content": r["completion"]}], "label": r["label"]} for r in kto])
    (data / "c4.json").write_text((REPO / "examples/data/tiny_corpus.jsonl").read_text())
    (data / "dataset_info.json").write_text(json.dumps({
        "toy": {"file_name": "toy.json"},
        "pairs": {"file_name": "pairs.json", "ranking": True,
                  "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen",
                              "rejected": "rejected"}},
        "kto_demo": {"file_name": "kto.json", "formatting": "sharegpt",
                     "columns": {"messages": "messages", "kto_tag": "label"},
                     "tags": {"role_tag": "role", "content_tag": "content",
                              "user_tag": "user", "assistant_tag": "assistant"}},
        "c4_demo": {"file_name": "c4.json", "columns": {"prompt": "text"}},
    }))
    for stage, parts in CASES.items():
        (tmp_path / f"lf_{stage}.yaml").write_text(
            COMMON.format(model=tiny_model_dir, stage=stage, **parts))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("stage", list(CASES))
def test_llamafactory_configs_convert_and_validate(factory_dir, stage, capsys):
    assert main(["convert", "llamafactory", f"lf_{stage}.yaml", "-o", f"{stage}.yaml"]) == 0
    err = capsys.readouterr().err
    # what has no equivalent is listed with why; nothing else is
    listed = [line.split(":")[0].strip() for line in err.split("not mapped")[1].splitlines()[1:]]
    assert listed == ["max_samples"], err
    tree = yaml.safe_load((factory_dir / f"{stage}.yaml").read_text())
    assert tree["stage"] == stage
    assert tree["adapter"] == {"type": "lora", "r": 8, "alpha": 16, "target_modules": "all-linear"}
    assert tree["data"]["train"] == [CASES[stage]["dataset"]]
    assert tree["data"]["registry"] == "data/dataset_info.json"
    assert tree["train"]["batch_size"] == 2 and tree["train"]["grad_accum"] == 2
    assert tree["train"]["extra"] == {"ddp_timeout": 180000000}
    if stage == "sft":
        assert tree["model"]["template"] == "auto" and "qwen3_nothink" in err
    assert main(["validate", f"{stage}.yaml"]) == 0, capsys.readouterr().err


def test_converted_sft_config_trains_two_steps(factory_dir, capsys):
    assert main(["convert", "llamafactory", "lf_sft.yaml", "-o", "sft.yaml"]) == 0
    code = main(["train", "sft.yaml", "train.max_steps=2", "train.output_dir=out",
                 "data.eval=null"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((factory_dir / "out" / "metrics.json").read_text())
    assert metrics["global_step"] == 2, metrics


def test_unknown_keys_and_unmappable_values_are_listed_with_why(tmp_path, capsys):
    (tmp_path / "lf.yaml").write_text(
        "model_name_or_path: x\nstage: sft\nfinetuning_type: oft\npref_loss: simpo\n"
        "torch_compile: true\nmy_custom_flag: 3\nval_size: 200\n")
    assert main(["convert", "llamafactory", str(tmp_path / "lf.yaml")]) == 0
    captured = capsys.readouterr()
    tree = yaml.safe_load(captured.out)
    assert tree["train"]["extra"] == {"torch_compile": True}
    unmapped = dict(line.strip().split(": ", 1) for line in
                    captured.err.split("not mapped (4):\n")[1].splitlines())
    assert set(unmapped) == {"finetuning_type", "pref_loss", "my_custom_flag", "val_size"}
    assert "oft" in unmapped["finetuning_type"] and "simpo" in unmapped["pref_loss"]
    assert unmapped["my_custom_flag"] == "not a LLaMA-Factory train argument lmforge knows"
