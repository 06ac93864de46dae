"""`lmforge train examples/tiny/sft.yaml` end to end: the files a run leaves, and that the tiny
model really learned the toy mapping (greedy exact match on the eval file) in under a minute."""

from __future__ import annotations

import json

import yaml

from tests.conftest import REPO, run_cli

FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
         "generation_config.json", "metrics.json", "loss.png", "lmforge_config.yaml", "env.json")


def _exact_match(out) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    rows = [json.loads(line) for line in (REPO / "examples/data/toy_eval.jsonl").open()]
    hits = 0
    for row in rows:
        enc = tok.apply_chat_template([{"role": "user", "content": row["instruction"]}],
                                      add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=8, do_sample=False)
        answer = tok.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        hits += answer.strip() == row["output"]
    return hits / len(rows)


def test_train_tiny_sft_example(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "examples/tiny/sft.yaml", f"train.output_dir={out}",
                   "train.num_threads=1", "train.logging_steps=25", "train.save_total_limit=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in FILES:
        assert (out / name).is_file(), name
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-200"]  # save_total_limit
    assert list((out / "logs").rglob("events.out.tfevents.*"))  # TensorBoard by default

    resolved = yaml.safe_load((out / "lmforge_config.yaml").read_text())
    assert resolved["train"]["logging_steps"] == 25 and resolved["train"]["output_dir"] == str(out)
    assert resolved["train"]["save_total_limit"] == 1

    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    template = tok_cfg.get("chat_template") or (out / "chat_template.jinja").read_text()
    assert "{% generation %}" in template.replace("{%-", "{%")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    eos = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    assert (eos[0] if isinstance(eos, list) else eos) == tok.convert_tokens_to_ids("<|im_end|>")

    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("train_loss", "eval_loss", "train_runtime", "train_tokens_per_second"):
        assert isinstance(metrics[key], float), key
    assert metrics["global_step"] == 200 and metrics["train_tokens_per_second"] > 0
    assert metrics["train_runtime"] < 60
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _exact_match(out) >= 0.9
