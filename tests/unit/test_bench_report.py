"""The benchmark's arithmetic: token counting per batch, warm-step throughput, tables with
ratios and spreads, utilisation, and the target verdicts (bench/measure.py, bench/report.py,
bench/targets.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_batch_counts_padded_packed_and_preference():
    from bench.measure import batch_counts, feature_counts

    padded = {"input_ids": torch.zeros(2, 5, dtype=torch.long),
              "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]),
              "labels": torch.tensor([[-100, 5, 6, -100, -100], [-100, -100, 7, 8, 9]])}
    assert batch_counts(padded) == {"computed": 10, "nonpad": 8, "trained": 5, "examples": 2}
    # lmforge's packed rows carry no mask: three examples in the first row, one in the second,
    # whose padding the collator gives positions of its own (restarting at 0: not an example)
    features = [{"input_ids": [1] * 6, "position_ids": [0, 1, 0, 1, 2, 0]},
                {"input_ids": [1] * 4, "position_ids": [0, 1, 2, 3]}]
    pre = feature_counts(features)
    packed = {"input_ids": torch.zeros(2, 6, dtype=torch.long),
              "labels": torch.full((2, 6), -100),
              "position_ids": torch.tensor([[0, 1, 0, 1, 2, 0], [0, 1, 2, 3, 0, 1]])}
    packed["labels"][0, 2:4] = 1
    assert batch_counts(packed, pre) == {"computed": 12, "nonpad": 10, "trained": 2,
                                         "examples": 4}
    # LLaMA-Factory's neat packing: segment ids in the mask, zeros are padding
    neat = feature_counts([{"input_ids": [5] * 6, "attention_mask": [1, 1, 2, 2, 2, 0]}])
    assert neat == {"nonpad": 5, "examples": 2}
    # trl's packed rows: one example per sequence length
    assert feature_counts([{"input_ids": [5] * 5, "seq_lengths": [2, 3]}]) == \
        {"nonpad": 5, "examples": 2}
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
    from bench.stats import aggregate

    runs = [dict(_train(tps, 1.99), gate={}) for tps in (280, 300, 330)]
    t = table("train", {"TRL": _train(100, 2.0), "LLaMA-Factory": _train(150, 2.0),
                        "lmforge": aggregate(runs),
                        "LLaMA-Factory fair": {"skipped": "no peer venv"}})
    assert t["columns"] == ["metric", "lmforge", "TRL", "lmforge / TRL", "LLaMA-Factory",
                            "lmforge / LLaMA-Factory"]
    row = next(r for r in t["rows"] if r[0].startswith("trained tokens/s, each"))
    assert row == ["trained tokens/s, each tool's own labels", "300.0 (280.0–330.0)", "100.0",
                   "3.00x", "150.0", "2.00x"]
    assert t["notes"] == ["LLaMA-Factory fair: no peer venv"]
    prep = table("preprocess", {"lmforge": {"examples_per_s": 200}, "trl": {"examples_per_s": 100},
                                "lmforge x2": {"examples_per_s": 300},
                                "trl x2": {"examples_per_s": 150}})
    assert prep["rows"][0] == ["examples/s", "200", "100", "2.00x", "300", "150", "2.00x"]


def test_targets_and_utilisation():
    from bench.report import add_utilisation
    from bench.targets import targets

    lf = dict(_train(100, 2.0), peak_rss_mb=3000)
    results = {"a": {"TRL": _train(100, 2.0), "lmforge": _train(160, 2.03),
                     "LLaMA-Factory fair": {"skipped": "LLaMA-Factory not run: no venv"}},
               "b": {"TRL": _train(100, 2.0), "LLaMA-Factory": lf,
                     "lmforge": dict(_train(250, 2.1), executed_flops_per_s=7.5e5,
                                     peak_rss_mb=4000, precision="bf16")},
               "c": {"lmforge": _train(10, 1.0, pad=0.02)},
               "e": {"lmforge batched": {"tokens_per_s": 60}, "one-by-one": {"tokens_per_s": 10}},
               "f": {"lmforge": {"examples_per_s": 12000}, "trl": {"examples_per_s": 1}}}
    add_utilisation(results, {"matmul_flops": 1e6, "matmul_flops_bf16": 2e6})
    assert results["a"]["lmforge"]["mfu_nominal"] == pytest.approx(6 * 1000 * 320 / 1e6)
    b = results["b"]["lmforge"]  # a bf16 job is measured against the bf16 peak
    assert b["mfu_nominal"] == pytest.approx(6 * 1000 * 500 / 2e6)
    assert b["mfu_executed"] == pytest.approx(7.5e5 / 2e6)
    assert b["executed_per_token"] == pytest.approx(7.5e5 / (1000 * 500))
    verdict = {t["target"]: t for t in targets(results)}
    assert verdict["(a) trained tokens/s vs TRL, at equal held-out loss"]["met"] is True
    # 2.5x but the held-out loss is 5 % worse: not "at equal loss"
    assert verdict["(b) trained tokens/s vs TRL, at equal held-out loss"]["met"] is False
    assert verdict["(b) trained tokens/s vs LLaMA-Factory, at equal held-out loss"]["met"] \
        is False
    skipped = verdict["(a) trained tokens/s vs LLaMA-Factory fair, at equal held-out loss"]
    assert skipped["met"] is None and "no venv" in skipped["note"]
    assert verdict["(b) executed-FLOP utilisation, lmforge"]["met"] is False  # 37.5 %
    assert verdict["(b) peak RSS vs LLaMA-Factory"]["met"] is False
    assert verdict["(c) pad fraction with packing"]["met"] is True
    assert verdict["(e) batched generation vs one-by-one"]["met"] is True
    assert verdict["(f) preprocessing, lmforge"]["met"] is True


def test_one_count_of_trained_tokens_compares_examples_per_second():
    from bench.report import add_common_count
    from bench.targets import targets

    # trl trains one token more per example (the newline after <|im_end|>): its own count
    # says 1.5x lmforge's tokens/s although both get through the same examples per second
    results = {"b": {"TRL": dict(_train(300, 2.0), examples=10, real_tokens=30,
                                 examples_per_s=100.0, examples_per_cpu_s=60.0),
                     "lmforge": dict(_train(200, 2.0), examples=10, real_tokens=20,
                                     examples_per_s=100.0)}}
    add_common_count(results)
    assert results["b"]["TRL"]["common_real_tokens_per_s"] == pytest.approx(200.0)
    assert results["b"]["TRL"]["common_real_tokens_per_cpu_s"] == pytest.approx(120.0)
    assert results["b"]["lmforge"]["common_real_tokens_per_s"] == pytest.approx(200.0)
    first = targets(results)[0]
    assert first["value"] == "1.00x" and "one count" in first["note"]


def test_markdown_has_every_scenario_and_target():
    from bench.report import table
    from bench.runner import markdown
    from bench.targets import targets

    results = {"a": {"TRL": _train(100, 2.0), "lmforge": _train(160, 2.0)}}
    doc = {"scenarios": {"a": {"title": "SFT", "table": table("train", results["a"])}},
           "targets": targets(results)}
    md = markdown(doc)
    assert "### (a) SFT" in md and "| lmforge | TRL | lmforge / TRL |" in md
    assert "| met |" in md and "ran in" not in md
    doc["machine"] = {"lmforge_venv": {"venv": "/x/.venv-bench", "optional_installed": []}}
    assert md + "\nlmforge, TRL, HF Trainer ran in /x/.venv-bench (of bitsandbytes, torchao, " \
        "deepspeed installed: none)\n" == markdown(doc)


def test_each_run_is_measured_against_the_peak_probed_before_its_round():
    from bench.report import add_utilisation
    from bench.stats import aggregate

    # the machine slows down between rounds: the same job at half the speed and half the peak
    # is the same utilisation, not a drop
    runs = [dict(_train(tps, 2.0), executed_flops_per_s=flops, matmul_peak={"matmul_flops": p})
            for tps, flops, p in ((100, 5e5, 1e6), (50, 2.5e5, 5e5), (100, 5e5, 1e6))]
    results = {"b": {"lmforge": aggregate(runs)}}
    add_utilisation(results, {"matmul_flops": 2e6})  # the run's first probe: not used here
    r = results["b"]["lmforge"]
    assert r["mfu_executed"] == pytest.approx(0.5)
    assert r["spread"]["mfu_executed"] == pytest.approx([0.5, 0.5, 3])
    assert r["mfu_nominal"] == pytest.approx(6 * 1000 * 200 / 1e6)
    assert r["peak_gflops"] == pytest.approx(1e6 / 1e9)
    assert r["spread"]["peak_gflops"][:2] == pytest.approx([5e5 / 1e9, 1e6 / 1e9])
