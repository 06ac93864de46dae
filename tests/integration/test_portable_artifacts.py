"""Portable artifacts (model/portable.py, export/card.py): a saved adapter names its base as the
user named it (``builtin:``, a hub id, a path relative to the run when the base lies inside or
beside it), every lmforge loader resolves those names, the run carries a real model card whose
loading code works, and a config that cannot learn is flagged; README's example learns."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
import yaml

from lmforge import stages
from lmforge.model.portable import base_name, rebase, resolve_base
from tests.conftest import REPO, write_jsonl

TEXT = "<|im_start|>user\nname a colour 3<|im_end|>\n<|im_start|>assistant\n"


def _cfg(tmp_path, base: str, out, **adapter):
    from lmforge.config import validate

    data = write_jsonl(tmp_path / "sft.jsonl", [
        {"instruction": f"name a colour {i}", "output": "red green"} for i in range(8)])
    return validate({"stage": "sft", "model": {"path": base},
                     "adapter": {"type": "lora", "r": 4, "alpha": 8,
                                 "modules_to_save": ["lm_head"], **adapter},
                     "data": {"train": str(data), "max_length": 64},
                     "train": {"output_dir": str(out), "max_steps": 2, "save_steps": 2,
                               "batch_size": 4, "learning_rate": 1e-2, "report_to": ["none"],
                               "num_threads": 1}})


def _logits(model) -> torch.Tensor:
    from transformers import AutoTokenizer

    from lmforge.utils.builtin import resolve

    ids = AutoTokenizer.from_pretrained(resolve("builtin:tiny-llama"))([TEXT],
                                                                      return_tensors="pt")
    with torch.no_grad():
        return model(input_ids=ids["input_ids"]).logits[0].float()


def _base_of(d) -> str:
    return json.loads((d / "adapter_config.json").read_text())["base_model_name_or_path"]


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("portable")
    return stages.run(_cfg(d, "builtin:tiny-llama", d / "run")).output_dir


def test_base_names(tmp_path, tiny_model_dir):
    from lmforge.config.model import ModelConfig

    run = tmp_path / "runs" / "dpo"
    run.mkdir(parents=True)
    for d in (run / "base", tmp_path / "runs" / "merged", tmp_path / "elsewhere" / "m"):
        d.mkdir(parents=True)
    named = {p: base_name(ModelConfig(path=str(p)), run) for p in (
        "builtin:tiny-llama", "Qwen/Qwen2-0.5B", run / "base", tmp_path / "runs" / "merged",
        tmp_path / "elsewhere" / "m")}
    assert list(named.values()) == ["builtin:tiny-llama", "Qwen/Qwen2-0.5B", "./base",
                                    "../merged", str(tmp_path / "elsewhere" / "m")]
    assert base_name(ModelConfig(path=str(tmp_path), gguf_file="m.gguf"), run) is None
    # resolution: relative to the adapter, or to the run holding a checkpoint
    assert resolve_base("./base", run) == str(run / "base")
    assert resolve_base("./base", run / "checkpoint-2") == str(run / "base")
    assert resolve_base("../merged", run) == str(tmp_path / "runs" / "merged")
    assert resolve_base("builtin:tiny-llama", run) == "builtin:tiny-llama"
    # an adapter copied elsewhere names the same base from its new place
    assert rebase("./base", run, tmp_path / "runs" / "export") == "../dpo/base"
    assert rebase("./base", run, tmp_path / "elsewhere" / "x") == str(run / "base")


def test_adapter_names_its_builtin_base_and_every_loader_resolves_it(builtin_run, tmp_path):
    from lmforge.export.merge import export
    from lmforge.export.source import inspect_source
    from lmforge.infer.loading import load

    assert _base_of(builtin_run) == "builtin:tiny-llama"
    assert _base_of(builtin_run / "checkpoint-2") == "builtin:tiny-llama"
    assert "/.cache/" not in (builtin_run / "adapter_config.json").read_text()
    want = _logits(load(str(builtin_run)).model)
    # a bare copy of the adapter (no lmforge_config.yaml): only adapter_config.json names the base
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
              "tokenizer_config.json"):
        shutil.copy2(builtin_run / f, bare / f)
    assert inspect_source(bare).base.path == "builtin:tiny-llama"
    assert torch.allclose(_logits(load(str(bare)).model), want, atol=1e-5)
    export(bare, tmp_path / "exported")
    assert _base_of(tmp_path / "exported") == "builtin:tiny-llama"
    export(bare, tmp_path / "merged", merge=True)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert torch.allclose(_logits(merged), want, atol=1e-4)


def test_run_model_card_and_its_loading_code(builtin_run):
    card = (builtin_run / "README.md").read_text()
    assert "More Information Needed" not in card  # not peft's empty template
    metrics = json.loads((builtin_run / "metrics.json").read_text())
    for expected in ('base_model: "builtin:tiny-llama"', "- stage: sft", "lora, r=4",
                     "fully trained: lm_head", "sft.jsonl", "## Training", "| learning_rate |",
                     f"| train_loss | {metrics['train_loss']:.4g} |", "| global_step | 2 |",
                     "PeftModel.from_pretrained", "lmforge chat"):
        assert expected in card, expected
    code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    code = code.replace(f'PATH = "{builtin_run.name}"', f'PATH = "{builtin_run}"')
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the documented code, as written
    from lmforge.infer.loading import load

    assert torch.allclose(_logits(scope["model"]), _logits(load(str(builtin_run)).model),
                          atol=1e-5)


def test_base_beside_the_run_is_relative_and_moves_with_it(tmp_path, tiny_model_dir):
    from lmforge.export.source import inspect_source
    from lmforge.infer.loading import load

    runs = tmp_path / "runs"
    shutil.copytree(tiny_model_dir, runs / "base-model")
    out = stages.run(_cfg(tmp_path, str(runs / "base-model"), runs / "sft")).output_dir
    assert _base_of(out) == "../base-model"
    want = _logits(load(str(out)).model)
    moved = tmp_path / "moved"
    shutil.move(str(runs), str(moved))  # the recorded absolute model.path is gone now
    assert inspect_source(moved / "sft").base.path == str(moved / "base-model")
    assert torch.allclose(_logits(load(str(moved / "sft")).model), want, atol=1e-5)
    assert torch.allclose(_logits(load(str(moved / "sft" / "checkpoint-2")).model), want,
                          atol=1e-5)


def test_adapter_on_a_random_base_is_flagged(tmp_path, caplog, tiny_model_dir):
    from lmforge.config import validate
    from lmforge.model.adapters import cannot_learn, random_init
    from tests.conftest import run_cli

    assert random_init("builtin:tiny-llama") and random_init(str(tiny_model_dir))
    assert not random_init("builtin:smollm2-135m-instruct") and not random_init(str(tmp_path))
    cfg = validate({"model": {"path": "builtin:tiny-llama"}, "adapter": {"type": "lora"}})
    assert "modules_to_save" in cannot_learn(cfg.adapter, cfg.model.path)
    prompt = validate({"model": {"path": "builtin:tiny-llama"},
                       "adapter": {"type": "prompt_tuning"}})
    assert "adapter.type: full" in cannot_learn(prompt.adapter, prompt.model.path)
    fixed = validate({"model": {"path": "builtin:tiny-llama"},
                      "adapter": {"type": "lora", "modules_to_save": ["lm_head"]}})
    assert cannot_learn(fixed.adapter, fixed.model.path) is None
    full = validate({"model": {"path": "builtin:tiny-llama"}, "adapter": {"type": "full"}})
    assert cannot_learn(full.adapter, full.model.path) is None
    config = tmp_path / "lora.yaml"
    config.write_text(yaml.safe_dump({
        "stage": "sft", "model": {"path": "builtin:tiny-llama"}, "adapter": {"type": "lora"},
        "data": {"train": str(REPO / "examples/data/toy_train.jsonl"), "format": "alpaca"},
        "train": {"output_dir": str(tmp_path / "out"), "max_steps": 1}}))
    proc = run_cli("validate", str(config), timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr
    assert "warning: adapter.type lora on 'builtin:tiny-llama', a randomly initialised" \
        in proc.stderr and "modules_to_save: [lm_head]" in proc.stderr
    from lmforge.model.adapters import attach
    from lmforge.model.loader import load_model

    with caplog.at_level("WARNING", logger="lmforge.model.adapters"):
        attach(load_model(cfg.model), cfg.adapter)
    assert "randomly initialised" in caplog.text


def _readme_config() -> dict:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))


def test_readme_example_learns(tmp_path):
    """README's first config, as printed, for its full length: the loss falls far below
    chance (ln 1024 = 6.93)."""
    from lmforge.config import validate
    from lmforge.model.adapters import cannot_learn

    tree = _readme_config()
    tree["data"]["train"] = str(REPO / tree["data"]["train"])
    tree["train"].update(output_dir=str(tmp_path / "run"), report_to=["none"], num_threads=1)
    cfg = validate(tree)
    assert cannot_learn(cfg.adapter, cfg.model.path) is None
    result = stages.run(cfg)
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert losses[0] > 6.5 and losses[-1] < 1.5, losses
    assert result.metrics["eval_loss"] < 1.5
