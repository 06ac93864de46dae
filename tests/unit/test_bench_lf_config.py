"""What the benchmark hands LLaMA-Factory (bench/lf_jobs.py): its dataset_info.json and rows, and
the train arguments at its defaults and at speed-fair settings. That LLaMA-Factory itself accepts
them is tested where its venv exists (tests/integration/test_bench_llamafactory.py)."""

from __future__ import annotations

import json

import pytest

from bench.lf_jobs import DATASET, lf_args, lf_dataset

LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"}
SPEC = {"model_path": "/models/smollm2", "lf_template": "smollm2", "max_length": 256,
        "batch_size": 8, "lr": 1e-3, "seed": 0, "lora": LORA}


def test_dataset_info_and_rows(tmp_path):
    train = tmp_path / "train.jsonl"
    rows = [{"instruction": "Topic?", "input": "", "output": "sport",
             "origin": {"source": "bbc"}},
            {"instruction": "Sum", "output": "4"}]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    name = lf_dataset(train, tmp_path / "data")
    info = json.loads((tmp_path / "data" / "dataset_info.json").read_text())
    assert name == DATASET and info[name]["formatting"] == "alpaca"
    assert info[name]["columns"] == {"prompt": "instruction", "query": "input",
                                     "response": "output"}
    written = [json.loads(x) for x in
               (tmp_path / "data" / info[name]["file_name"]).read_text().splitlines()]
    assert written == [{"instruction": "Topic?", "input": "", "output": "sport"},
                       {"instruction": "Sum", "input": "", "output": "4"}]


def test_a_row_without_an_answer_names_its_line(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n')
    with pytest.raises(ValueError, match=r"train.jsonl:2: alpaca row without output"):
        lf_dataset(train, tmp_path / "data")


def test_defaults_fair_and_packing(tmp_path):
    d = lf_args(SPEC, tmp_path / "data", tmp_path / "out")
    assert d["stage"] == "sft" and d["finetuning_type"] == "lora" and d["lora_target"] == "all"
    assert (d["lora_rank"], d["lora_alpha"], d["lora_dropout"]) == (8, 16, 0.0)
    assert d["template"] == "smollm2" and d["cutoff_len"] == 256
    assert d["per_device_train_batch_size"] == 8 and d["learning_rate"] == 1e-3
    assert d["dataset"] == DATASET and d["dataset_dir"] == str(tmp_path / "data")
    assert d["bf16"] is False and d["save_strategy"] == "no"
    # its own defaults stay: checkpointing on, no packing
    assert "disable_gradient_checkpointing" not in d and "packing" not in d
    fair = lf_args(dict(SPEC, settings="fair"), tmp_path, tmp_path)
    assert fair["disable_gradient_checkpointing"] is True
    assert {k: v for k, v in fair.items() if k != "disable_gradient_checkpointing"} == \
        {k: v for k, v in lf_args(SPEC, tmp_path, tmp_path).items()}
    packed = lf_args(dict(SPEC, packing=True, precision="bf16"), tmp_path, tmp_path)
    assert packed["packing"] is True and packed["neat_packing"] is True and packed["bf16"]


def test_unmapped_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="only 'all-linear'"):
        lf_args(dict(SPEC, lora=dict(LORA, target_modules=["q_proj"])), tmp_path, tmp_path)
    with pytest.raises(ValueError, match="choose 'defaults' or 'fair'"):
        lf_args(dict(SPEC, settings="fast"), tmp_path, tmp_path)
