"""validate names the lmforge key of a LLaMA-Factory / transformers / seed-config name wherever
it appears (config/aliases.py), instead of a misleading did-you-mean."""

from __future__ import annotations

import pytest

from lmforge.config import validate
from lmforge.config.aliases import ALIASES, BY_NAME
from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError

MIN = {"model": {"path": "builtin:tiny-llama"}}

# LLaMA-Factory's examples/train_lora/qwen3_lora_sft.yaml, unchanged (as a dict)
QWEN3_LORA_SFT = {
    "model_name_or_path": "Qwen/Qwen3-4B-Instruct-2507", "trust_remote_code": True,
    "stage": "sft", "do_train": True, "finetuning_type": "lora", "lora_rank": 8,
    "lora_target": "all", "dataset": "identity", "template": "qwen3_nothink",
    "cutoff_len": 2048, "max_samples": 1000, "preprocessing_num_workers": 16,
    "dataloader_num_workers": 4, "output_dir": "saves/qwen3-4b/lora/sft", "logging_steps": 10,
    "save_steps": 500, "plot_loss": True, "overwrite_output_dir": True, "save_only_model": False,
    "report_to": "none", "per_device_train_batch_size": 1, "gradient_accumulation_steps": 8,
    "learning_rate": 1.0e-4, "num_train_epochs": 3.0, "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1, "bf16": True, "ddp_timeout": 180000000, "resume_from_checkpoint": None}


def problems(tree: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(tree)
    return info.value.problems


def test_hf_and_llamafactory_names_say_their_lmforge_key():
    found = problems({**MIN, "learning_rate": 1e-4, "cutoff_len": 512,
                      "train": {"per_device_train_batch_size": 2,
                                "gradient_accumulation_steps": 4},
                      "adapter": {"lora_rank": 16}})
    assert ("train.per_device_train_batch_size: unknown key; per_device_train_batch_size → "
            "train.batch_size (a LLaMA-Factory / TrainingArguments name)") in found
    assert any(p.startswith("train.gradient_accumulation_steps: unknown key; "
                            "gradient_accumulation_steps → train.grad_accum") for p in found)
    assert any(p.startswith("cutoff_len: unknown key; cutoff_len → data.max_length") for p in found)
    assert any(p.startswith("learning_rate: unknown key; learning_rate → train.learning_rate")
               for p in found)
    assert any(p.startswith("adapter.lora_rank: unknown key; lora_rank → adapter.r") for p in found)
    assert not any("eval_batch_size" in p or "did you mean" in p for p in found), found


def test_seed_blocks_no_longer_get_misleading_hints():
    found = problems({**MIN, "pretrain": {"path": "x"}, "peft": {"r": 8}, "optim": {"lr": 1e-4}})
    assert any(p.startswith("pretrain: unknown key; pretrain → model (a CausalLM-Lit name")
               for p in found)
    assert any(p.startswith("peft: unknown key; peft → adapter") for p in found)
    assert any(p.startswith("optim: unknown key; optim → train (a CausalLM-Lit") for p in found)
    assert not any("'train'?" in p or "'pt'?" in p for p in found), found
    # the same name as a scalar is transformers' optimizer name
    found = problems({**MIN, "train": {"optim": "adamw_torch"}})
    assert found[0].startswith("train.optim: unknown key; optim → train.optimizer")


def test_an_unchanged_llamafactory_config_gets_a_way_forward_for_every_key():
    with pytest.raises(ConfigError) as info:
        validate(QWEN3_LORA_SFT)
    assert "lmforge convert llamafactory FILE -o run.yaml" in info.value.hint
    found = info.value.problems
    assert found[0] == "model: required key is missing"
    assert len(found[1:]) == len(QWEN3_LORA_SFT) - 1  # stage is an lmforge key too
    for line in found[1:]:
        assert "→" in line or "has no lmforge key" in line, line


def test_other_section_and_training_arguments_fields():
    found = problems({**MIN, "train": {"max_length": 64, "torch_compile": True}})
    assert "train.max_length: unknown key; it belongs in another section: data.max_length" \
        in found
    assert "train.torch_compile: unknown key; a TrainingArguments field: give it as " \
        "train.extra.torch_compile" in found


def _lmforge_keys() -> set[str]:
    keys = set()

    def walk(model, prefix):
        for name, field in model.model_fields.items():
            keys.add(prefix + name)
            from lmforge.config.report import _model_in

            sub = _model_in(field.annotation)
            if sub is not None:
                walk(sub, f"{prefix}{name}.")
    walk(RunConfig, "")
    return keys


def test_every_target_is_an_lmforge_key_and_names_are_unique_per_origin():
    keys = _lmforge_keys()
    for row in ALIASES:
        if row.target is not None and not row.target.startswith("train.extra."):
            assert row.target in keys, row
        assert row.target is not None or row.note, row
    for name, rows in BY_NAME.items():
        assert len({r.origin for r in rows}) == len(rows), name
