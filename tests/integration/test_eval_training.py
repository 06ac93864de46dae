"""Acceptance: an SFT run with eval.during_training and eval.best_metric: accuracy logs the metric
at every evaluation, stops early once it plateaus, and leaves the best checkpoint in output_dir.
The same run then goes through `lmforge eval` and `lmforge predict --votes`.

The task: every answer is "yes". The tiny model starts at accuracy 0, learns the answer within a
few evaluations, and then the metric cannot improve any more (the plateau).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import write_jsonl

WORDS = "apple banana cherry dog cat bird red green blue one two three".split()
EVAL_STEPS, PATIENCE, MAX_STEPS = 2, 3, 40


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from lmforge import stages
    from lmforge.config import validate

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("evalrun")
    rows = [{"instruction": f"is {w} a word", "output": "yes"} for w in WORDS]
    write_jsonl(d / "train.jsonl", rows)
    write_jsonl(d / "eval.jsonl", rows[:4])
    cfg = validate({
        "stage": "sft", "model": {"path": "builtin:tiny-llama"}, "adapter": {"type": "full"},
        "data": {"train": str(d / "train.jsonl"), "eval": str(d / "eval.jsonl")},
        "train": {"output_dir": str(d / "out"), "max_steps": MAX_STEPS, "learning_rate": 3e-4,
                  "lr_scheduler": "constant", "batch_size": 4, "save_steps": EVAL_STEPS,
                  "eval_steps": EVAL_STEPS, "logging_steps": EVAL_STEPS,
                  "report_to": ["tensorboard"], "num_threads": 1},
        "eval": {"during_training": True, "metrics": ["accuracy", "rouge"],
                 "best_metric": "accuracy", "early_stopping_patience": PATIENCE,
                 "generation": {"max_new_tokens": 4}}})
    result = stages.run(cfg)
    return d / "out", result, cfg


def _evals(out, step):
    state = json.loads((out / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return [h for h in state["log_history"] if "eval_loss" in h]


def test_metric_logged_at_every_evaluation_and_early_stop(run):
    out, result, _ = run
    last = result.metrics["global_step"]
    evals = _evals(out, last)
    assert [h["step"] for h in evals] == list(range(EVAL_STEPS, last + 1, EVAL_STEPS))
    assert all("eval_accuracy" in h and "eval_rouge1" in h for h in evals)
    acc = [h["eval_accuracy"] for h in evals]
    assert acc[0] < 1.0 and max(acc) == 1.0  # it learned
    best = acc.index(max(acc))
    # stopped exactly PATIENCE evaluations after the best one, long before max_steps
    assert len(acc) == best + 1 + PATIENCE and last < MAX_STEPS
    assert result.metrics["early_stopped"] and result.metrics["best_metric"] == 1.0
    assert result.metrics["best_step"] == evals[best]["step"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_step"] == evals[best]["step"]
    # generations of every evaluation are kept; the best ones answer "yes" and stop there
    preds = [json.loads(x) for x in (out / "predictions" / f"step-{evals[best]['step']}.jsonl")
             .read_text().splitlines()]
    assert [p["prediction"] for p in preds] == ["yes"] * 4 and all(p["correct"] for p in preds)
    # the reporters see the generation metrics too (the stage runs our callbacks first)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "logs"))
    events.Reload()
    assert [e.value for e in events.Scalars("eval/accuracy")] == acc


def test_output_dir_holds_the_best_checkpoint(run):
    out, result, _ = run
    final = load_file(out / "model.safetensors")
    best = load_file(out / f"checkpoint-{result.metrics['best_step']}" / "model.safetensors")
    last = load_file(out / f"checkpoint-{result.metrics['global_step']}" / "model.safetensors")
    assert final.keys() == best.keys()
    assert all(torch.equal(final[k], best[k]) for k in final)
    assert any(not torch.equal(final[k], last[k]) for k in final)


def test_lmforge_eval_on_the_run_dir(run, tmp_path):
    from lmforge.cli import main

    out, result, _ = run
    rc = main(["eval", "--model", str(out), "--metrics", "accuracy,f1,perplexity",
               "--output-dir", str(tmp_path), "--no-progress"])
    assert rc == 0
    summary = json.loads((tmp_path / "eval_metrics.json").read_text())
    assert summary["examples"] == 4
    assert summary["metrics"]["accuracy"] == 1.0 == summary["metrics"]["f1"]
    # perplexity of the references = exp(eval_loss) of the best checkpoint
    best = [h for h in _evals(out, result.metrics["global_step"])
            if h["step"] == result.metrics["best_step"]][0]
    assert summary["metrics"]["perplexity"] == pytest.approx(
        2.718281828 ** best["eval_loss"], rel=1e-3)
    recs = [json.loads(x) for x in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert recs[0]["input"] == [{"role": "user", "content": "is apple a word"}]
    assert {k for k in recs[0]} >= {"input", "reference", "prediction", "extracted", "origin"}


def test_predict_votes_majority_and_resume(run, tmp_path):
    from lmforge.cli import main

    out, _, _ = run
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"instruction": f"is {w} a word"}
                                                 for w in WORDS[:3]])
    pred = tmp_path / "pred.jsonl"
    args = ["predict", "--model", str(out), "--input", str(inputs), "--output", str(pred),
            "--votes", "5", "--max-new-tokens", "4", "--answer-pattern", r"(\w+)",
            "--no-progress"]
    assert main(args) == 0
    recs = [json.loads(x) for x in pred.read_text().splitlines()]
    for r in recs:
        assert sum(r["votes"].values()) == 5 and len(r["samples"]) == 5
        top = max(r["votes"].values())
        assert r["votes"][r["answer"]] == top  # the answer is a majority answer
        assert [s["answer"] for s in r["samples"]].count(r["answer"]) == top
    # interrupt after the first record, then resume: the first record is not redone
    lines = pred.read_text().splitlines()
    first = json.loads(lines[0])
    first["prediction"] = "SENTINEL"
    pred.write_text(json.dumps(first) + "\n" + lines[1][:10])
    assert main(args) == 0
    again = [json.loads(x) for x in pred.read_text().splitlines()]
    assert [r["index"] for r in again] == [0, 1, 2] and again[0]["prediction"] == "SENTINEL"
    assert again[1:] == recs[1:]  # seeded per input: the same answers after a resume


def test_eval_from_a_run_config_and_a_data_file_with_compare(run, tmp_path, tiny_model_dir):
    from lmforge.cli import main

    out, _, _ = run
    # run args: the config's output_dir is evaluated on its data.eval
    assert main(["eval", str(out / "lmforge_config.yaml"), "--metrics", "accuracy",
                 "--max-samples", "2", "--output-dir", str(tmp_path / "a"),
                 "--no-progress"]) == 0
    summary = json.loads((tmp_path / "a" / "eval_metrics.json").read_text())
    assert summary["examples"] == 2 and summary["metrics"]["accuracy"] == 1.0
    # a plain model on a file, side by side with the fine-tuned run
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"is {w} a word", "response": "yes"}
                                              for w in WORDS[4:7]])
    assert main(["eval", "--model", str(tiny_model_dir), "--data-file", str(data),
                 "--metrics", "accuracy,exact_match", "--compare", str(out),
                 "--output-dir", str(tmp_path / "b"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "b" / "eval_metrics.json").read_text())
    assert summary["metrics"]["accuracy"] == 0.0  # the random base never says "yes"
    assert summary["base"]["metrics"] == {"accuracy": 1.0, "exact_match": 1.0}
    assert (tmp_path / "b" / "base_predictions.jsonl").is_file()


def test_resume_keeps_the_best_metric_and_the_patience_count(run, tmp_path):
    import shutil

    from lmforge import stages

    out, result, cfg = run
    best, last = result.metrics["best_step"], result.metrics["global_step"]
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    for step in range(best + 2 * EVAL_STEPS, last + 1, EVAL_STEPS):  # as if interrupted
        shutil.rmtree(copy / f"checkpoint-{step}")
    resumed = cfg.model_copy(update={"train": cfg.train.model_copy(update={
        "output_dir": str(copy), "resume": str(copy / f"checkpoint-{best + EVAL_STEPS}"),
        "report_to": ["none"]})})
    again = stages.run(resumed)
    # one evaluation without improvement was already counted before the interruption
    assert again.metrics["global_step"] == last and again.metrics["early_stopped"]
    assert again.metrics["best_step"] == best


def test_eval_cli_scores_a_label_set(run, tmp_path):
    """``lmforge eval --mode choices --choices ...`` picks among the given answers by likelihood:
    the run trained to say "yes" picks it over "no" on every prompt."""
    from lmforge.cli import main

    out, _, _ = run
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"is {w} a word", "response": "yes"}
                                              for w in WORDS[4:7]])
    assert main(["eval", str(out), "--data-file", str(data), "--metrics", "accuracy",
                 "--mode", "choices", "--choices", "yes,no", "--output-dir", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    summary = json.loads((tmp_path / "c" / "eval_metrics.json").read_text())
    assert summary["metrics"]["accuracy"] == 1.0
    records = [json.loads(x) for x in (tmp_path / "c" / "predictions.jsonl").open()]
    assert all(r["prediction"] == "yes" and set(r["choice_scores"]) == {"yes", "no"}
               and r["choice_scores"]["yes"] > r["choice_scores"]["no"] for r in records)
