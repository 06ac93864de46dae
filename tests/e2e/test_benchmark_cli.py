"""`lmforge eval --benchmark mmlu` on the tiny model: the reported accuracy equals the one
computed independently from the model's next-token distribution over the option letters."""

from __future__ import annotations

import json

import torch

from lmforge.eval import benchmark as B
from tests.conftest import run_cli
from tests.unit.test_benchmark_mc import make_mmlu


def _expected(model_dir, data) -> dict[str, int]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    letters = [tok(x, add_special_tokens=False)["input_ids"] for x in B.LETTERS]
    assert all(len(x) == 1 for x in letters)  # so the next token decides
    correct = {}
    for subject, (dev, items) in data.items():
        correct[subject] = 0
        for q in items:
            chat = B.build_prompt(q, [], chinese=False, chat=True)
            text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                last = model(ids).logits[0, -1]
            pick = max(range(4), key=lambda i: last[letters[i][0]].item())
            correct[subject] += B.LETTERS[pick] == q.answer
    return correct


def test_mmlu_benchmark_on_the_tiny_model(tmp_path, tiny_model_dir):
    root = make_mmlu(tmp_path / "mmlu")
    res = run_cli("eval", "--benchmark", "mmlu", "--data-dir", str(root), "--model",
                  str(tiny_model_dir), "--output-dir", str(tmp_path / "out"), "--batch-size", "3")
    assert res.returncode == 0, res.stderr
    assert "overall" in res.stdout
    results = json.loads((tmp_path / "out" / "mmlu.json").read_text())["model"]
    want = _expected(tiny_model_dir, B.load("mmlu", root))
    assert {s: r["correct"] for s, r in results["subjects"].items()} == want
    assert results["accuracy"] == sum(want.values()) / 4
    assert results["prompt_style"] == "chat" and results["total"] == 4
    preds = (tmp_path / "out" / "mmlu_predictions.jsonl").read_text().splitlines()
    assert len(preds) == 4
