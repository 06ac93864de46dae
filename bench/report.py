"""Tables and targets from the jobs' results: every lmforge figure next to the reference figure
measured in the same run, and their ratio (lmforge / reference)."""

from __future__ import annotations

# (key, label, format); ratios are lmforge / reference for every row
TRAIN_METRICS = [
    ("common_real_tokens_per_s", "real tokens/s, one count (lmforge's labels)", "{:,.0f}"),
    ("real_tokens_per_s", "real (trained) tokens/s, each tool's own count", "{:,.0f}"),
    ("examples_per_s", "examples/s", "{:,.1f}"),
    ("real_tokens_per_cpu_s", "real tokens per CPU-second", "{:,.0f}"),
    ("nonpad_tokens_per_s", "non-pad tokens/s", "{:,.0f}"),
    ("computed_tokens", "computed tokens (all steps)", "{:,}"),
    ("real_tokens", "real tokens (all steps)", "{:,}"),
    ("pad_fraction", "pad fraction", "{:.1%}"),
    ("steps", "optimizer steps", "{}"),
    ("step_s_median", "step time median (s)", "{:.3f}"),
    ("step_s_min", "step time min (s)", "{:.3f}"),
    ("step_s_max", "step time max (s)", "{:.3f}"),
    ("final_loss", "final loss per real token", "{:.4f}"),
    ("eval_loss", "held-out loss per real token", "{:.4f}"),
    ("final_reward_accuracy", "final reward accuracy", "{:.3f}"),
    ("mfu", "MFU (6·params·non-pad tokens/s ÷ peak)", "{:.2%}"),
    ("peak_rss_mb", "peak RSS (MiB)", "{:,.0f}"),
    ("peak_gpu_mb", "peak GPU memory (MiB)", "{:,.0f}"),
    ("job_seconds", "job wall time (s)", "{:.1f}"),
]
GEN_METRICS = [("tokens_per_s", "generated tokens/s", "{:,.1f}"),
               ("tokens_per_cpu_s", "generated tokens per CPU-second", "{:,.1f}"),
               ("prompts_per_s", "prompts/s", "{:.2f}"),
               ("generated_tokens", "generated tokens", "{:,}"),
               ("seconds", "seconds", "{:.1f}"), ("peak_rss_mb", "peak RSS (MiB)", "{:,.0f}")]
PREP_METRICS = [("examples_per_s", "examples/s", "{:,.0f}"),  # the median of the repetitions
                ("examples_per_s_min", "examples/s, slowest repetition", "{:,.0f}"),
                ("examples_per_s_max", "examples/s, fastest repetition", "{:,.0f}"),
                ("tokenizer_1t_examples_per_s", "Rust tokenizer alone on the same texts, 1 thread, "
                 "examples/s", "{:,.0f}"),
                ("tokenizer_examples_per_s", "Rust tokenizer alone on the same texts, 2 threads, "
                 "examples/s", "{:,.0f}"),
                ("of_tokenizer", "examples/s ÷ tokenizer alone on 2 threads", "{:.0%}"),
                ("load_average", "machine load average (1 min) at the start", "{:.1f}"),
                ("repeats", "repetitions", "{}"),
                ("examples", "examples", "{:,}"),
                ("blocks", "packed blocks", "{:,}"), ("seconds", "seconds (median)", "{:.2f}"),
                ("peak_rss_mb", "peak RSS (MiB)", "{:,.0f}")]

# the issue's figures for LLaMA-Factory and TRL (idle, 2 threads). They count every non-pad token
# ("108 real tokens/s at 9.3 s/step" is a whole batch of 8 BBC prompts per step), and were taken
# on a machine whose dense fp32 matmul peak was ~184 GFLOP/s: the absolute comparison scales
# them by this machine's measured peak.
LLAMA_FACTORY = {"a": {"lf": 3900.0, "trl": 2900.0}, "b": {"lf": 142.0, "trl": 108.0}}
ISSUE_PEAK_FLOPS = 184e9
MATCH = 0.02  # "matching loss": held-out losses within 2 %


def fmt(value, pattern: str) -> str:
    if value is None:
        return "—"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def ratio(a, b) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or not b:
        return None
    return a / b


def pairs(kind: str, labels: list[str]) -> list[tuple[str, str]]:
    """(lmforge label, reference label) columns of a scenario's table."""
    if kind == "preprocess":
        mine = [x for x in labels if x.startswith("lmforge")]
        refs = [x for x in labels if not x.startswith("lmforge")]
        return list(zip(mine, refs))
    ours = next((x for x in labels if x.startswith("lmforge")), labels[0])
    return [(ours, x) for x in labels if x != ours]


def add_common_count(results: dict[str, dict[str, dict]]) -> None:
    """Real tokens/s with ONE definition of a trained token for every tool of a scenario.

    Tools disagree on what they train of the same example (trl's assistant mask of a ChatML
    template also covers the newline after ``<|im_end|>``: one token more per example), so each
    tool's own count rewards training more tokens. Here every job's examples/s is multiplied by
    lmforge's trained tokens per example on the same data: the ratio is then the ratio of the
    examples each tool gets through per second."""
    for jobs in results.values():
        ours = next((r for label, r in jobs.items() if label.startswith("lmforge")), {})
        if not ours.get("examples") or "real_tokens" not in ours:
            continue
        per_example = ours["real_tokens"] / ours["examples"]
        for r in jobs.values():
            if r.get("examples_per_s"):
                r["common_real_tokens_per_s"] = r["examples_per_s"] * per_example


def add_mfu(results: dict[str, dict[str, dict]], peak: float | None) -> None:
    """MFU of every training job: 6 x total parameters x non-pad tokens/s / matmul peak."""
    if not peak:
        return
    for jobs in results.values():
        for r in jobs.values():
            if "nonpad_tokens_per_s" in r and r.get("parameters"):
                r["mfu"] = 6 * r["parameters"] * r["nonpad_tokens_per_s"] / peak


def table(kind: str, jobs: dict[str, dict]) -> dict:
    """{"columns": [...], "rows": [[metric, figures and ratios...], ...]} ready to print:
    one lmforge column and (reference, ratio) column pairs; preprocessing compares
    single-process with single-process and multi-process with multi-process."""
    if kind == "mfu":
        peak = next(iter(jobs.values()), {}).get("matmul_flops")
        return {"columns": ["metric", "value"],
                "rows": [["dense fp32 matmul peak (GFLOP/s)", fmt(peak and peak / 1e9,
                                                                  "{:,.1f}")]]}
    metrics = {"generate": GEN_METRICS, "preprocess": PREP_METRICS}.get(kind, TRAIN_METRICS)
    cols = pairs(kind, list(jobs))
    grouped = kind == "preprocess"
    header = ["metric"] + ([] if grouped else [cols[0][0]])
    for mine, ref in cols:
        header += ([mine] if grouped else []) + [ref, f"{mine} / {ref}"]
    rows = []
    for key, label, pattern in metrics:
        if not any(key in jobs.get(x, {}) for pair in cols for x in pair):
            continue
        row = [label] + ([] if grouped else [fmt(jobs[cols[0][0]].get(key), pattern)])
        for mine, ref in cols:
            a, b = jobs.get(mine, {}).get(key), jobs.get(ref, {}).get(key)
            row += ([fmt(a, pattern)] if grouped else []) + [fmt(b, pattern),
                                                            fmt(ratio(a, b), "{:.2f}x")]
        rows.append(row)
    return {"columns": header, "rows": rows}


def _target(name: str, value, goal: str, met: bool | None, note: str = "") -> dict:
    return {"target": name, "value": value, "goal": goal, "met": met, "note": note}


def _sft_targets(key: str, jobs: dict, goal: float, peak: float | None) -> list[dict]:
    ours, trl = jobs.get("lmforge", {}), jobs.get("trl", {})
    key_tps = "common_real_tokens_per_s" if "common_real_tokens_per_s" in ours \
        and "common_real_tokens_per_s" in trl else "real_tokens_per_s"
    r = ratio(ours.get(key_tps), trl.get(key_tps))
    la, lb = ours.get("eval_loss"), trl.get("eval_loss")
    matching = la is not None and lb is not None and la <= lb * (1 + MATCH)
    out = [_target(f"({key}) real tokens/s vs TRL defaults, at matching held-out loss",
                   fmt(r, "{:.2f}x"), f">= {goal}x, loss within {MATCH:.0%}",
                   None if r is None else (r >= goal and matching),
                   f"held-out loss {fmt(la, '{:.4f}')} vs {fmt(lb, '{:.4f}')}"
                   + ("; one count of trained tokens" if key_tps.startswith("common") else ""))]
    lf = LLAMA_FACTORY[key]
    lf_ratio = lf["lf"] / lf["trl"]
    out.append(_target(f"({key}) above LLaMA-Factory (its speed-up over TRL in the issue)",
                       fmt(r, "{:.2f}x"), f"> {lf_ratio:.2f}x",
                       None if r is None else r > lf_ratio,
                       "the issue measured LLaMA-Factory at {:,.0f} vs TRL {:,.0f} real tok/s"
                       .format(lf["lf"], lf["trl"])))
    tps = ours.get("nonpad_tokens_per_s")
    scale = peak / ISSUE_PEAK_FLOPS if peak else 1.0
    out.append(_target(f"({key}) above LLaMA-Factory's absolute figure", fmt(tps, "{:,.0f}"),
                       f"> {lf['lf'] * scale:,.0f} non-pad tok/s",
                       None if tps is None else tps > lf["lf"] * scale,
                       f"the issue's {lf['lf']:,.0f} non-pad tok/s"
                       + (f" x {scale:.2f} (this machine's matmul peak / the issue's)"
                          if peak else " (no peak measured: unscaled)")
                       + "; other model and data than the issue's"))
    return out


def targets(results: dict[str, dict[str, dict]], peak: float | None = None) -> list[dict]:
    out = []
    if "a" in results:
        out += _sft_targets("a", results["a"], 1.5, peak)
    if "b" in results:
        out += _sft_targets("b", results["b"], 2.0, peak)
    if "c" in results:
        pad = results["c"].get("lmforge", {}).get("pad_fraction")
        out.append(_target("(c) pad fraction with packing", fmt(pad, "{:.1%}"), "<= 3%",
                           None if pad is None else pad <= 0.03))
    if "e" in results:
        jobs = results["e"]
        r = ratio(jobs.get("lmforge batched", {}).get("tokens_per_s"),
                  jobs.get("one-by-one", {}).get("tokens_per_s"))
        out.append(_target("(e) batched generation vs one-by-one", fmt(r, "{:.1f}x"), ">= 5x",
                           None if r is None else r >= 5))
    if "f" in results:
        for label, r in results["f"].items():
            if label.startswith("lmforge"):
                eps, tok = r.get("examples_per_s"), r.get("tokenizer_examples_per_s")
                note = "" if tok is None else (
                    f"the Rust tokenizer alone: {tok:,.0f} ex/s on 2 threads "
                    f"({fmt(r.get('tokenizer_1t_examples_per_s'), '{:,.0f}')} on 1), so the "
                    f"pipeline runs at {fmt(r.get('of_tokenizer'), '{:.0%}')} of it; load "
                    f"{fmt(r.get('load_average'), '{:.1f}')}")
                out.append(_target(f"(f) preprocessing, {label}", fmt(eps, "{:,.0f} ex/s"),
                                   ">= 10,000 ex/s", None if eps is None else eps >= 10_000,
                                   note))
    for key in ("a", "b", "c"):
        m = results.get(key, {}).get("lmforge", {}).get("mfu")
        if m is not None:
            out.append(_target(f"({key}) MFU, lmforge", fmt(m, "{:.1%}"), "reported", None))
    return out
