"""Stage pt on the tiny model: the packed pretraining example learns its corpus."""

from __future__ import annotations

import pytest

from tests.conftest import REPO


def _cfg(tiny_model_dir, out, *overrides):
    from lmforge.config import load

    return load(str(REPO / "examples/tiny/pt.yaml"), overrides=[
        f"model.path={tiny_model_dir}", f"train.output_dir={out}", "train.report_to=[none]",
        "train.num_threads=1", "train.logging_steps=5", *overrides])


def test_pt_example_loss_falls_on_packed_text(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoTokenizer, GenerationConfig

    from lmforge.stages import run

    monkeypatch.chdir(REPO)  # the example's data path is relative to the repository
    out = tmp_path / "pt"
    result = run(_cfg(tiny_model_dir, out, "train.max_steps=30", "train.eval_steps=15",
                      "train.save_steps=30"))
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    evals = [h["eval_loss"] for h in result.log_history if "eval_loss" in h]
    assert losses[-1] < 0.7 * losses[0]
    assert len(evals) >= 2 and evals[-1] < evals[0]
    m = result.metrics
    assert m["train_rows"] < m["train_examples"]  # documents were packed into blocks
    assert m["train_tokens_per_second"] > 0 and m["eval_loss"] == evals[-1]
    tok = AutoTokenizer.from_pretrained(out)
    assert GenerationConfig.from_pretrained(out).eos_token_id == tok.eos_token_id
    assert (out / "model.safetensors").is_file() and (out / "loss.png").is_file()


def test_pt_needs_text_format(tiny_model_dir, tmp_path):
    from lmforge.errors import ConfigError
    from lmforge.stages import run

    cfg = _cfg(tiny_model_dir, tmp_path, "data.format=alpaca")
    with pytest.raises(ConfigError, match="raw text"):
        run(cfg)
