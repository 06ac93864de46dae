"""Stage rm: the reward model learns the toy preference and loads as a plain sequence classifier."""

from __future__ import annotations

import json

import pytest
import torch

from lmforge import stages
from tests.integration.rl_toys import config, example, preference_data, preference_rows


def _scores(model_dir, texts):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**enc).logits[:, 0].tolist(), model


def test_reward_model_learns_pairwise_preference_and_loads_with_automodel(tmp_path):
    cfg = config(example("rm"), tmp_path, data=preference_data(tmp_path),
                 train={"max_steps": 15, "batch_size": 8, "save_steps": 15, "eval_steps": 15,
                        "learning_rate": 3e-3})
    result = stages.run(cfg)
    m = result.metrics
    assert m["eval_accuracy"] >= 0.9, m
    assert m["eval_accuracy"] > m["eval_accuracy_start"]
    assert m["eval_loss"] < m["eval_loss_start"] - 0.2
    out = result.output_dir
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["eval_accuracy"] == pytest.approx(m["eval_accuracy"])
    for name in ("loss.png", "accuracy.png", "margins.png", "checkpoint-15", "logs"):
        assert (out / name).exists(), name
    # plain transformers: the saved reward model prefers the chosen answers of unseen pairs
    from lmforge.data.templates import render_prompt
    from lmforge.model.loader import load_tokenizer

    tok = load_tokenizer(cfg.model)
    pairs = preference_rows(8, seed=99)
    prompts = [render_prompt([{"role": "user", "content": r["prompt"]}], tok.chat_template, tok)
               for r in pairs]
    chosen, model = _scores(out, [p + r["chosen"] + "<|im_end|>" for p, r in zip(prompts, pairs)])
    rejected, _ = _scores(out, [p + r["rejected"] + "<|im_end|>" for p, r in zip(prompts, pairs)])
    assert model.config.num_labels == 1 and model.config.pad_token_id == tok.pad_token_id
    assert sum(c > r for c, r in zip(chosen, rejected)) >= 7


def test_lora_reward_model_is_saved_merged_and_as_adapter(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    cfg = config(example("rm"), tmp_path, data=preference_data(tmp_path, 16, 8),
                 adapter={"type": "lora", "r": 4, "alpha": 8},
                 train={"max_steps": 3, "batch_size": 8, "save_steps": 3, "eval_steps": 3,
                        "learning_rate": 1e-2})
    out = stages.run(cfg).output_dir
    assert (out / "adapter" / "adapter_config.json").is_file()
    text = ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nfive good one<|im_end|>"]
    merged, _ = _scores(out, text)
    base = AutoModelForSequenceClassification.from_pretrained(
        str(cfg.model.path).replace("builtin:tiny-llama", _tiny()), num_labels=1)
    base.config.pad_token_id = 0
    peft_model = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(out)(text, add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        via_adapter = peft_model(**enc).logits[0, 0].item()
    assert merged[0] == pytest.approx(via_adapter, abs=1e-4)


def _tiny() -> str:
    from lmforge.utils.builtin import resolve

    return resolve("builtin:tiny-llama")
