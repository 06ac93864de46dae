"""The shipped examples/tiny configs of the preference and RL stages: each one validates, its
data (and custom reward file) loads, and it trains end to end — shortened here to one step
without evaluation; the stage tests run these configs on toy tasks and check that they learn,
and the e2e tier runs one unchanged from the CLI."""

from __future__ import annotations

import pytest

from lmforge import stages
from tests.conftest import REPO
from tests.integration.rl_toys import config, example

CURVE = {"rm": "accuracy.png", "dpo": "margins.png", "kto": "margins.png",
         "orpo": "margins.png", "ppo": "reward.png", "grpo": "reward.png"}


@pytest.mark.parametrize("stage", ["rm", "dpo", "kto", "orpo", "ppo", "grpo"])
def test_example_runs_end_to_end(stage, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the examples use paths relative to the repository
    steps = {"max_steps": 1, "save_steps": 1, "logging_steps": 1}
    cfg = config(example(stage), tmp_path, train=steps, data={"eval": None})
    assert cfg.stage == stage
    result = stages.run(cfg)
    out = result.output_dir
    assert result.metrics["global_step"] == 1
    for name in ("metrics.json", "loss.png", CURVE[stage], "lmforge_config.yaml",
                 "tokenizer.json", "checkpoint-1"):
        assert (out / name).exists(), name
    assert (out / "model.safetensors").is_file()
    from transformers import AutoConfig

    arch = AutoConfig.from_pretrained(out).architectures[0]
    assert arch == ("LlamaForSequenceClassification" if stage == "rm" else "LlamaForCausalLM")


# ---- examples/positive_reviews: raw review openings, VADER sentiment + shaping rewards --------

def _positive_reviews(stage: str) -> dict:
    import yaml

    base = yaml.safe_load((REPO / f"examples/positive_reviews/{stage}.yaml").read_text())
    base.update(yaml.safe_load((REPO / "examples/positive_reviews/data.yaml").read_text()))
    return base


@pytest.mark.parametrize("stage", ["grpo", "ppo"])
def test_positive_reviews_config_is_guarded(stage):
    """The example continues raw openings with the sentiment reward plus every shaping penalty,
    a KL pull to the base and the diagnostics on."""
    cfg = config(_positive_reviews(stage), REPO / "runs" / "unused")
    method = getattr(cfg, stage)
    assert method.prompt_template == "raw"
    names = [r if isinstance(r, str) else r.function for r in method.reward_functions]
    assert names == ["sentiment", "repetition_penalty", "on_task", "length_bounds"]
    assert (method.beta if stage == "grpo" else method.kl_coef) > 0
    assert method.top_k == 50 and method.diagnostic_samples > 0
    assert cfg.train.num_threads == 2


@pytest.mark.parametrize("stage", ["grpo", "ppo"])
def test_positive_reviews_smoke(stage, tmp_path, monkeypatch):
    """The example's configs, unchanged but for the tiny model and one short step, train on the
    committed openings: the raw prompts, the four rewards and the diagnostics all run."""
    monkeypatch.chdir(REPO)
    short = {"max_new_tokens": 8, "diagnostic_samples": 4}
    short.update({"num_generations": 2} if stage == "grpo" else
                 {"mini_batch_size": 2, "ppo_epochs": 1})
    cfg = config(_positive_reviews(stage), tmp_path, model={"path": "builtin:tiny-llama"},
                 adapter={"type": "lora", "r": 4, "alpha": 8, "dropout": 0.0},
                 train={"max_steps": 1, "save_steps": 1, "eval_steps": 1, "batch_size": 4,
                        "num_threads": 1}, data={"eval": None}, **{stage: short})
    result = stages.run(cfg)
    metrics = result.metrics
    assert metrics["global_step"] == 1
    assert 0.0 <= metrics["diag_distinct_2"] <= 1.0 and "diag_kl_to_base" in metrics
    assert (result.output_dir / "metrics.json").is_file()


@pytest.mark.slow
def test_positive_reviews_full_runs(tmp_path):
    """The full example, unchanged, for GRPO and PPO (5-12 minutes each on 2 idle cores), scored
    on the held-out openings with score.py's sampled decoding. Both meet the issue's goal: a mean
    VADER compound >= 0.4 above the base, distinct-2 >= 0.6, no opening sentence in more than 10 %
    of the outputs (measured in examples/positive_reviews/README.md)."""
    import importlib.util
    import json

    from tests.conftest import run_cli

    spec = importlib.util.spec_from_file_location(
        "positive_reviews_score", REPO / "examples/positive_reviews/score.py")
    score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score)
    prompts = [json.loads(x)["prompt"]
               for x in (REPO / "examples/positive_reviews/data/eval.jsonl").open()]
    base = score.score("builtin:smollm2-135m-instruct", prompts, 32, 0)["sampled"]
    for stage, gain in (("grpo", 0.4), ("ppo", 0.4)):
        run = tmp_path / stage
        res = run_cli("train", "--data", "examples/positive_reviews/data.yaml", "--model",
                      f"examples/positive_reviews/{stage}.yaml", f"train.output_dir={run}",
                      timeout=3000)
        assert res.returncode == 0, res.stderr[-3000:]
        tuned = score.score(str(run), prompts, 32, 0)["sampled"]
        assert tuned["mean_sentiment"] >= base["mean_sentiment"] + gain, (stage, base, tuned)
        assert tuned["distinct_2"] >= 0.6, (stage, tuned)
        assert tuned["top_sentence_share"] <= 0.1, (stage, tuned)
