"""The benchmark's arithmetic: token counting per batch, warm-step throughput, tables with
ratios, and the target verdicts (bench/measure.py, bench/report.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_batch_counts_padded_packed_and_preference():
    from bench.measure import batch_counts

    padded = {"input_ids": torch.zeros(2, 5, dtype=torch.long),
              "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]),
              "labels": torch.tensor([[-100, 5, 6, -100, -100], [-100, -100, 7, 8, 9]])}
    assert batch_counts(padded) == {"computed": 10, "nonpad": 8, "trained": 5, "examples": 2}
    # packed rows carry no mask: the features' own lengths give the non-pad tokens
    packed = {"input_ids": torch.zeros(2, 6, dtype=torch.long),
              "labels": torch.full((2, 6), -100),
              # three examples in the first row, one in the second (then padding)
              "position_ids": torch.tensor([[0, 1, 0, 1, 2, 0], [0, 1, 2, 3, 4, 5]])}
    packed["labels"][0, 2:4] = 1
    features = [{"input_ids": [1] * 6}, {"input_ids": [1] * 4}]
    assert batch_counts(packed, features) == {"computed": 12, "nonpad": 10, "trained": 2,
                                              "examples": 4}
    pref = {"input_ids": torch.zeros(4, 3, dtype=torch.long),
            "attention_mask": torch.ones(4, 3, dtype=torch.long),
            "completion_mask": torch.tensor([[0, 1, 1]] * 4)}
    assert batch_counts(pref) == {"computed": 12, "nonpad": 12, "trained": 8, "examples": 4}


def test_summarize_uses_warm_steps_only():
    from bench.measure import summarize

    micro = [{"computed": 100, "nonpad": 80, "trained": 40}] * 4
    # start at t=0; steps end at 10 (cold), 11, 12, 14
    step_ends = [(10.0, 5.0, 1), (11.0, 6.0, 2), (12.0, 7.0, 3), (14.0, 8.0, 4)]
    s = summarize(micro, step_ends, [3.0, 2.0, 1.5, 1.0], (0.0, 0.0), warmup=1)
    assert s["computed_tokens"] == 400 and s["real_tokens"] == 160
    assert s["pad_fraction"] == pytest.approx(0.2)
    assert s["warm_steps"] == 3 and s["warm_seconds"] == pytest.approx(4.0)
    assert s["real_tokens_per_s"] == pytest.approx(120 / 4.0)
    assert s["real_tokens_per_cpu_s"] == pytest.approx(120 / 3.0)
    assert s["examples"] == 0 and s["examples_per_s"] == 0.0  # these batches carried no count
    assert (s["step_s_min"], s["step_s_median"], s["step_s_max"]) == (1.0, 1.0, 2.0)
    assert s["final_loss"] == 1.0 and s["first_loss"] == 3.0


def _train(tps, loss, pad=0.1):
    return {"real_tokens_per_s": tps, "eval_loss": loss, "pad_fraction": pad,
            "nonpad_tokens_per_s": tps * 2, "parameters": 1000}


def test_table_puts_every_figure_next_to_the_reference_with_the_ratio():
    from bench.report import table

    t = table("train", {"trl": _train(100, 2.0), "hf-trainer": _train(150, 2.0),
                        "lmforge": _train(300, 1.99)})
    assert t["columns"] == ["metric", "lmforge", "trl", "lmforge / trl", "hf-trainer",
                            "lmforge / hf-trainer"]
    row = next(r for r in t["rows"] if r[0].startswith("real (trained)"))
    assert row == ["real (trained) tokens/s, each tool's own count", "300", "100", "3.00x", "150",
                   "2.00x"]
    prep = table("preprocess", {"lmforge": {"examples_per_s": 200}, "trl": {"examples_per_s": 100},
                                "lmforge x2": {"examples_per_s": 300},
                                "trl x2": {"examples_per_s": 150}})
    assert prep["rows"][0] == ["examples/s", "200", "100", "2.00x", "300", "150", "2.00x"]


def test_targets_and_mfu():
    from bench.report import add_mfu, targets

    results = {"a": {"trl": _train(100, 2.0), "lmforge": _train(160, 2.03)},
               "b": {"trl": _train(100, 2.0), "lmforge": _train(250, 2.1)},
               "c": {"lmforge": _train(10, 1.0, pad=0.02)},
               "e": {"lmforge batched": {"tokens_per_s": 60}, "one-by-one": {"tokens_per_s": 10}},
               "f": {"lmforge": {"examples_per_s": 12000}, "trl": {"examples_per_s": 1}}}
    add_mfu(results, peak=1e6)
    assert results["a"]["lmforge"]["mfu"] == pytest.approx(6 * 1000 * 320 / 1e6)
    verdict = {t["target"]: t["met"] for t in targets(results)}
    assert verdict["(a) real tokens/s vs TRL defaults, at matching held-out loss"] is True
    # 2.5x but the held-out loss is 5 % worse: not "at matching loss"
    assert verdict["(b) real tokens/s vs TRL defaults, at matching held-out loss"] is False
    assert verdict["(b) above LLaMA-Factory (its speed-up over TRL in the issue)"] is True
    assert verdict["(c) pad fraction with packing"] is True
    assert verdict["(e) batched generation vs one-by-one"] is True
    assert verdict["(f) preprocessing, lmforge"] is True
    assert verdict["(a) MFU, lmforge"] is None


def test_one_count_of_trained_tokens_compares_examples_per_second():
    from bench.report import add_common_count, targets

    # trl trains one token more per example (the newline after <|im_end|>): its own count
    # says 1.5x lmforge's tokens/s although both get through the same examples per second
    results = {"b": {"trl": dict(_train(300, 2.0), examples=10, real_tokens=30,
                                 examples_per_s=100.0),
                     "lmforge": dict(_train(200, 2.0), examples=10, real_tokens=20,
                                     examples_per_s=100.0)}}
    add_common_count(results)
    assert results["b"]["trl"]["common_real_tokens_per_s"] == pytest.approx(200.0)
    assert results["b"]["lmforge"]["common_real_tokens_per_s"] == pytest.approx(200.0)
    first = targets(results)[0]
    assert first["value"] == "1.00x" and "one count" in first["note"]


def test_markdown_has_every_scenario_and_target():
    from bench.report import table, targets
    from bench.runner import markdown

    results = {"a": {"trl": _train(100, 2.0), "lmforge": _train(160, 2.0)}}
    doc = {"scenarios": {"a": {"title": "SFT", "table": table("train", results["a"])}},
           "targets": targets(results)}
    md = markdown(doc)
    assert "### (a) SFT" in md and "| lmforge | trl | lmforge / trl |" in md
    assert "| met |" in md
