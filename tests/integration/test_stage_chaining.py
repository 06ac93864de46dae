"""Stage chaining (model/chain.py): a LoRA SFT run as the next stage's ``model.path``. The new
stage starts from exactly the SFT model (policy and reference), and its result loads as the
chained model in plain transformers + peft, in lmforge's inference loading, ``info`` and
``export``; runs that cannot be continued are refused by ``validate`` with a hint."""

from __future__ import annotations

import contextlib
import json
import shutil

import pytest
import torch

from lmforge import stages
from lmforge.model import chain
from lmforge.training.context import RunContext
from tests.conftest import write_jsonl
from tests.integration.rl_toys import (config, example, preference_data, prompt_data,
                                       write_rewards)

TEXT = "<|im_start|>user\nSay something about red apple.<|im_end|>\n<|im_start|>assistant\n"


def _ids(tokenizer):
    return tokenizer([TEXT], return_tensors="pt")["input_ids"]


def _logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits[0].float()


def _base():
    from transformers import AutoModelForCausalLM

    from lmforge.utils.builtin import resolve

    return AutoModelForCausalLM.from_pretrained(resolve("builtin:tiny-llama"),
                                                dtype=torch.float32)


def _sft_config(d, adapter: dict):
    from lmforge.config import validate

    write_jsonl(d / "sft.jsonl", [{"instruction": f"name a colour {i}", "output": "red green"}
                                  for i in range(8)])
    return validate({"stage": "sft", "model": {"path": "builtin:tiny-llama"}, "adapter": adapter,
                     "data": {"train": str(d / "sft.jsonl"), "max_length": 64},
                     "train": {"output_dir": str(d / "out"), "max_steps": 3, "save_steps": 3,
                               "learning_rate": 2e-2, "batch_size": 4, "report_to": ["none"],
                               "num_threads": 1}})


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    """A LoRA SFT run whose lm_head trains fully: its model really differs from the base."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("sft")
    stages.run(_sft_config(d, {"type": "lora", "r": 4, "alpha": 8,
                               "modules_to_save": ["lm_head"]}))
    return d / "out"


@pytest.fixture(scope="module")
def sft_logits(sft_run):
    """The SFT model as peft computes it (base + adapter, unmerged) and the bare base."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    ids = _ids(AutoTokenizer.from_pretrained(sft_run))
    base = _logits(_base(), ids)
    sft = _logits(PeftModel.from_pretrained(_base(), str(sft_run)), ids)
    assert (sft - base).abs().max() > 1e-2  # the SFT run changed the model
    return ids, sft, base


def _chained_logits(sft_run, run, ids):
    """The chained model computed independently: SFT merged into the base, then run's adapter."""
    from peft import PeftModel

    merged = PeftModel.from_pretrained(_base(), str(sft_run)).merge_and_unload()
    return _logits(PeftModel.from_pretrained(merged, str(run)), ids)


def _check_loadable(run, sft_run, ids, sft, tmp_path):
    """The result, loaded four ways, is the chained model (and no longer the SFT model)."""
    from peft import AutoPeftModelForCausalLM

    from lmforge.export.inspect import model_info
    from lmforge.export.merge import export
    from lmforge.infer.engine import ChatEngine

    want = _chained_logits(sft_run, run, ids)
    assert (want - sft).abs().max() > 1e-4  # the new stage trained its adapter
    # the adapter names its base relative to the run ("./base", model/portable.py): plain peft
    # resolves that from the run directory
    assert json.loads((run / "adapter_config.json").read_text())[
        "base_model_name_or_path"] == "./base"
    with contextlib.chdir(run):
        plain = AutoPeftModelForCausalLM.from_pretrained(".", dtype=torch.float32)
    assert torch.allclose(_logits(plain, ids), want, atol=1e-4)
    engine = ChatEngine.load(str(run))
    assert torch.allclose(_logits(engine.model, ids), want, atol=1e-4)
    assert model_info(str(run))["base_model"] == str(run / chain.BASE_DIR)
    export(run, tmp_path / "merged", merge=True)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    assert torch.allclose(_logits(merged, ids), want, atol=1e-4)


def test_dpo_continues_from_a_lora_sft_run(sft_run, sft_logits, tmp_path):
    from lmforge.stages import dpo
    from lmforge.training.context import start

    ids, sft, base = sft_logits
    cfg = config(example("dpo"), tmp_path, model={"path": str(sft_run)},
                 data=preference_data(tmp_path, 8, 4), adapter={"type": "lora", "r": 4,
                                                                "alpha": 8},
                 train={"max_steps": 2, "batch_size": 4, "save_steps": 2, "eval_steps": 2,
                        "learning_rate": 2e-2, "report_to": ["none"], "num_threads": 1})
    probe = chain.resolve(cfg.model_copy(update={"train": cfg.train.model_copy(
        update={"output_dir": str(tmp_path / "probe")})}))
    assert probe.model.path == str(tmp_path / "probe" / chain.BASE_DIR)
    trainer = dpo.build(start(probe))[0]
    model = trainer.model
    assert trainer.ref_model is None and list(model.peft_config) == ["default"]
    assert torch.allclose(_logits(model, ids), sft, atol=1e-4)  # the policy starts as SFT
    with model.disable_adapter():  # the reference is the SFT model, not the base
        assert torch.allclose(_logits(model, ids), sft, atol=1e-4)

    result = stages.run(cfg)
    m = result.metrics
    for key in ("eval_rewards/chosen_start", "eval_rewards/rejected_start"):
        assert m[key] == pytest.approx(0.0, abs=1e-5)  # log(policy / reference) = 0 at step 0
    _check_loadable(result.output_dir, sft_run, ids, sft, tmp_path)


def test_ppo_continues_from_a_lora_sft_run(sft_run, sft_logits, tmp_path):
    from lmforge.model.loader import load_tokenizer
    from lmforge.stages.ppo import build_models

    ids, sft, base = sft_logits
    rewards = write_rewards(tmp_path)
    train = {"max_steps": 2, "batch_size": 8, "learning_rate": 2e-2, "save_steps": 2,
             "report_to": ["none"], "num_threads": 1}
    cfg = config(example("ppo"), tmp_path, model={"path": str(sft_run)},
                 data=dict(prompt_data(tmp_path, 16), eval=None), train=train,
                 adapter={"type": "lora", "r": 4, "alpha": 8},
                 ppo={"reward_functions": [f"{rewards}:digit_share"], "mini_batch_size": 8})
    resolved = chain.resolve(cfg)
    policy, reference, _, _ = build_models(RunContext(resolved, tmp_path, load_tokenizer(resolved.model), None), "cpu")
    assert reference is None  # the reference is the policy with its adapter disabled ...
    assert torch.allclose(_logits(policy, ids), sft, atol=1e-4)
    with policy.disable_adapter():  # ... which is the SFT model, so the KL is measured from it
        assert torch.allclose(_logits(policy, ids), sft, atol=1e-4)
    full = resolved.model_copy(update={"adapter": resolved.adapter.model_copy(
        update={"type": "full"})})
    _, frozen, _, _ = build_models(RunContext(full, tmp_path, load_tokenizer(resolved.model), None), "cpu")
    assert torch.allclose(_logits(frozen, ids), sft, atol=1e-4)  # full: a frozen SFT copy

    result = stages.run(cfg)
    assert result.log_history[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    _check_loadable(result.output_dir, sft_run, ids, sft, tmp_path)


def test_a_full_finetune_run_is_a_model_directory(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.stages import dpo
    from lmforge.training.context import start

    torch.set_num_threads(1)
    run = stages.run(_sft_config(tmp_path, {"type": "full"})).output_dir
    cfg = config(example("dpo"), tmp_path, model={"path": str(run)},
                 data=preference_data(tmp_path, 8, 4),
                 train={"report_to": ["none"], "num_threads": 1})
    assert chain.resolve(cfg) is cfg and chain.problems(cfg) == []
    trainer = dpo.build(start(cfg))[0]
    ids = _ids(AutoTokenizer.from_pretrained(run))
    want = _logits(AutoModelForCausalLM.from_pretrained(run, dtype=torch.float32), ids)
    assert torch.allclose(_logits(trainer.model, ids), want, atol=1e-5)
    assert torch.allclose(_logits(trainer.ref_model, ids), want, atol=1e-5)


def test_base_is_merged_once_and_resume_refuses_another_adapter(sft_run, tmp_path):
    from lmforge.errors import ConfigError

    source = tmp_path / "sft"
    shutil.copytree(sft_run, source)
    cfg = config(example("dpo"), tmp_path, model={"path": str(source)},
                 data=preference_data(tmp_path, 8, 4))
    weights = tmp_path / "out" / chain.BASE_DIR / "model.safetensors"
    chain.resolve(cfg)
    first = weights.stat().st_mtime_ns
    resumed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"resume": "auto"})})
    chain.resolve(resumed)
    assert weights.stat().st_mtime_ns == first  # reused, not merged again
    (source / "adapter_model.safetensors").write_bytes(
        (source / "adapter_model.safetensors").read_bytes())  # a different adapter file
    with pytest.raises(ConfigError, match="train.resume"):
        chain.resolve(resumed)
    chain.resolve(cfg)  # a fresh run merges again
    assert weights.stat().st_mtime_ns != first


def test_validate_recognises_runs_and_refuses_what_cannot_continue(sft_run, tmp_path):
    from peft import PromptTuningConfig, TaskType, get_peft_model

    from lmforge.commands.validate import check_files
    from lmforge.errors import ModelError
    from lmforge.model.loader import load_model

    ok = config(example("dpo"), tmp_path, model={"path": str(sft_run)},
                data=preference_data(tmp_path, 8, 4))
    assert check_files(ok) == []
    prompt = tmp_path / "prompt-adapter"
    get_peft_model(_base(), PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                               num_virtual_tokens=2)).save_pretrained(prompt)
    bad = config(example("dpo"), tmp_path, model={"path": str(prompt)},
                 dpo={"reference_model": str(sft_run)}, data=preference_data(tmp_path, 8, 4))
    problems = check_files(bad)
    assert len(problems) == 2, problems
    assert "PROMPT_TUNING" in problems[0] or "prompt_tuning" in problems[0]
    assert "adapter.path" in problems[0]
    assert problems[1].startswith("dpo.reference_model:") and "--merge" in problems[1]
    with pytest.raises(ModelError, match="holds a peft adapter"):
        load_model(ok.model)  # never transformers' half-loaded adapter


def test_a_moved_chained_run_still_loads(sft_run, sft_logits, tmp_path):
    from lmforge.infer.loading import load

    ids = sft_logits[0]
    cfg = config(example("sft"), tmp_path, model={"path": str(sft_run)},
                 adapter={"type": "lora", "r": 4, "alpha": 8},
                 data={"train": str(write_jsonl(tmp_path / "t.jsonl", [
                     {"instruction": "q", "output": "a"}] * 4)), "eval": None},
                 train={"max_steps": 1, "batch_size": 4, "save_steps": 1,
                        "report_to": ["none"], "num_threads": 1})
    run = stages.run(cfg).output_dir
    before = _logits(load(str(run)).model, ids)
    moved = tmp_path / "moved"
    shutil.move(run, moved)  # lmforge_config.yaml still names the old <run>/base
    loaded = load(str(moved))
    assert torch.allclose(_logits(loaded.model, ids), before, atol=1e-6)
    assert torch.allclose(before, _chained_logits(sft_run, moved, ids), atol=1e-4)


def test_web_ui_form_on_a_run_says_it_continues_from_it(sft_run, tmp_path):
    from lmforge.webui import form

    data = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "a", "output": "b"}])
    values = {s.path: s.default for s in form.fields()} | {"model.path": str(sft_run),
                                                          "data.train": str(data)}
    cfg, message = form.check(form.build_tree(values))
    assert cfg is not None and message.startswith("ok\n") and "continues from" in message
