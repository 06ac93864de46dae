"""Stage ppo (lmforge's own loop): the mean reward rises on a toy task; LoRA uses the
adapter-disabled policy as reference; a reward model and a separate critic work; resume continues
exactly where the run stopped."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lmforge import stages
from tests.integration.rl_toys import config, example, first_last, prompt_data, write_rewards


def _ppo(tmp_path, **sections):
    rewards = write_rewards(tmp_path)
    base = config(example("ppo"), tmp_path, data=prompt_data(tmp_path),
                  ppo={"reward_functions": [f"{rewards}:digit_share"]})
    return config(base.model_dump(exclude_none=True), tmp_path, **sections)


def test_ppo_raises_the_mean_reward(tmp_path):
    cfg = _ppo(tmp_path, train={"max_steps": 8, "batch_size": 16, "learning_rate": 1e-3,
                                "save_steps": 8})
    result = stages.run(cfg)
    first, last = first_last(result.log_history, "reward_mean")
    assert last > first + 0.1, (first, last)
    m = result.metrics
    assert m["reward_mean_last"] > m["reward_mean_first"]
    assert result.log_history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference
    assert result.log_history[-1]["kl"] > 0
    out = result.output_dir
    for name in ("metrics.json", "loss.png", "reward.png", "model.safetensors",
                 "critic/value_head.safetensors", "checkpoint-8/ppo_state.json",
                 "tokenizer.json", "chat_template.jinja"):
        assert (out / name).exists(), name
    assert any((out / "logs").rglob("events.out.tfevents.*"))
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.generation_config.eos_token_id == 2


def test_ppo_lora_reference_is_the_adapter_disabled_policy(tmp_path):
    from lmforge.stages.ppo import build_models

    cfg = _ppo(tmp_path, adapter={"type": "lora", "r": 4, "alpha": 8},
               train={"max_steps": 2, "batch_size": 8, "learning_rate": 1e-2, "save_steps": 2})
    from lmforge.model.loader import load_tokenizer
    from lmforge.training.context import RunContext

    policy, reference, head, backbone = build_models(RunContext(cfg, tmp_path, load_tokenizer(cfg.model), None), "cpu")
    assert reference is None and backbone is None  # no second copy of the model
    assert all(not p.requires_grad for n, p in policy.named_parameters() if "lora" not in n)
    result = stages.run(cfg)
    out = result.output_dir
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert result.log_history[-1]["kl"] != 0  # the adapter moved away from the disabled base


def test_ppo_with_a_reward_model_and_a_separate_critic(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lmforge.utils.builtin import resolve

    rm_dir = tmp_path / "rm"
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(resolve("builtin:tiny-llama"),
                                                            num_labels=1)
    rm.save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(resolve("builtin:tiny-llama")).save_pretrained(rm_dir)
    cfg = _ppo(tmp_path, ppo={"reward_functions": [], "reward_model": str(rm_dir),
                              "critic": "separate"},
               train={"max_steps": 2, "batch_size": 8, "save_steps": 2})
    result = stages.run(cfg)
    assert all("rewards/reward_model" in h for h in result.log_history)
    assert (result.output_dir / "critic" / "model.safetensors").is_file()
    assert (result.output_dir / "checkpoint-2" / "critic" / "model.safetensors").is_file()


def test_ppo_resume_continues_with_identical_numbers(tmp_path):
    from safetensors.torch import load_file

    full = _ppo(tmp_path, train={"max_steps": 4, "batch_size": 8, "save_steps": 2,
                                 "output_dir": str(tmp_path / "full")})
    stages.run(full)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "full" / "checkpoint-2", resumed_dir / "checkpoint-2")
    resumed = config(full.model_dump(exclude_none=True), tmp_path,
                     train={"output_dir": str(resumed_dir), "resume": "auto"})
    again = stages.run(resumed)
    reference = json.loads((tmp_path / "full" / "checkpoint-4" / "ppo_state.json").read_text())
    assert [h["reward_mean"] for h in again.log_history] == pytest.approx(
        [h["reward_mean"] for h in reference["history"]], abs=1e-6)
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(resumed_dir / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
