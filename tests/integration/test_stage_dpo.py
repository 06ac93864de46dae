"""Stage dpo: the chosen-vs-rejected margin grows; the reference is the frozen base, or the
policy with its adapter disabled (no second copy) under LoRA; trl's loss variants are reachable."""

from __future__ import annotations

import pytest
import torch

from lmforge import stages
from tests.integration.rl_toys import config, example, first_last, preference_data


def test_dpo_margin_grows_on_the_toy_preference(tmp_path):
    cfg = config(example("dpo"), tmp_path, data=preference_data(tmp_path),
                 train={"max_steps": 12, "batch_size": 8, "save_steps": 12, "eval_steps": 12,
                        "logging_steps": 1, "learning_rate": 5e-3})
    result = stages.run(cfg)
    m = result.metrics
    assert m["eval_rewards/margins_start"] == pytest.approx(0.0, abs=1e-6)  # policy == reference
    assert m["eval_rewards/margins"] > 0.2, m
    assert m["eval_rewards/accuracies"] >= 0.9
    first, last = first_last(result.log_history, "rewards/margins")
    assert last > first + 0.1
    out = result.output_dir
    for name in ("metrics.json", "loss.png", "margins.png", "accuracy.png", "model.safetensors",
                 "checkpoint-12", "generation_config.json"):
        assert (out / name).exists(), name
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out).config.vocab_size == 1024


def _logps(model, enc):
    with torch.no_grad():
        logits = model(**enc).logits[:, :-1]
    return torch.log_softmax(logits, -1).gather(-1, enc["input_ids"][:, 1:, None]).sum()


def test_lora_reference_is_the_policy_with_its_adapter_disabled(tmp_path):
    from lmforge.stages import dpo
    from lmforge.training.context import start

    cfg = config(example("dpo"), tmp_path, data=preference_data(tmp_path, 8, 4),
                 adapter={"type": "lora", "r": 4, "alpha": 8})
    trainer = dpo.build(start(cfg))[0]
    model = trainer.model
    assert trainer.ref_model is None
    assert list(model.peft_config) == ["default"]  # trl's 'ref' adapter copy was dropped
    tok = trainer.processing_class
    enc = tok(["<|im_start|>user\nhi<|im_end|>\n"], return_tensors="pt")
    with torch.no_grad():  # make the adapter do something, then compare with the bare base
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(0.05)
    with model.disable_adapter():
        disabled = _logps(model, enc)
    from transformers import AutoModelForCausalLM

    from lmforge.utils.builtin import resolve

    base = AutoModelForCausalLM.from_pretrained(resolve("builtin:tiny-llama"))
    assert disabled.item() == pytest.approx(_logps(base, enc).item(), abs=1e-4)
    assert _logps(model, enc).item() != pytest.approx(disabled.item(), abs=1e-3)


def test_full_finetuning_reference_is_a_frozen_copy_and_losses_reach_trl(tmp_path):
    from lmforge.stages import dpo
    from lmforge.training.context import start

    cfg = config(example("dpo"), tmp_path, data=preference_data(tmp_path, 8, 4),
                 dpo={"loss": "ipo", "beta": 0.3})
    trainer = dpo.build(start(cfg))[0]
    assert trainer.ref_model is not None and trainer.ref_model is not trainer.model
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    assert trainer.loss_types == ["ipo"] and trainer.beta == 0.3
    args = dpo.build_args(config(example("dpo"), tmp_path, dpo={"loss": ["sigmoid", "sft"],
                                                                 "loss_weights": [1.0, 0.5]}),
                          has_eval=False)
    assert args.loss_type == ["sigmoid", "sft"] and args.loss_weights == [1.0, 0.5]
