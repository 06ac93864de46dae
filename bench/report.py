"""Tables from the jobs' results: every lmforge figure next to the reference figure measured in
the same run, and their ratio (lmforge / reference). A figure repeated over runs is the median,
with the spread (min-max) beside it. Targets: bench/targets.py."""

from __future__ import annotations

from bench.stats import median_spread

# (key, label, format); ratios are lmforge / reference for every row
TRAIN_METRICS = [
    ("common_real_tokens_per_s", "trained tokens/s, one count (lmforge's labels per example)",
     "{:,.1f}"),
    ("real_tokens_per_s", "trained tokens/s, each tool's own labels", "{:,.1f}"),
    ("examples_per_s", "examples/s", "{:,.2f}"),
    ("common_real_tokens_per_cpu_s", "trained tokens per CPU-second, one count (robust to "
     "other load)", "{:,.1f}"),
    ("real_tokens_per_cpu_s", "trained tokens per CPU-second, each tool's own labels",
     "{:,.1f}"),
    ("nonpad_tokens_per_s", "non-pad tokens/s", "{:,.0f}"),
    ("eval_loss", "held-out loss per trained token (one function, peft-loaded adapter)",
     "{:.4f}"),
    ("final_loss", "final training loss (last quarter of logged steps)", "{:.4f}"),
    ("peak_gflops", "matmul peak probed before the job's round (GFLOP/s)", "{:,.1f}"),
    ("mfu_nominal", "utilisation, nominal: 6·N·non-pad tokens/s ÷ matmul peak", "{:.1%}"),
    ("mfu_executed", "utilisation, executed FLOPs ÷ matmul peak", "{:.1%}"),
    ("executed_gflops", "executed GFLOP/s (bench/flops.py)", "{:,.1f}"),
    ("executed_per_token", "executed FLOPs per non-pad token ÷ N", "{:.2f}"),
    ("head_fraction", "LM head positions ÷ computed positions", "{:.1%}"),
    ("peak_rss_mb", "peak RSS (MiB)", "{:,.0f}"),
    ("peak_gpu_mb", "peak GPU memory (MiB)", "{:,.0f}"),
    ("pad_fraction", "pad fraction", "{:.1%}"),
    ("computed_tokens", "computed positions (all steps)", "{:,.0f}"),
    ("real_tokens", "trained tokens (all steps)", "{:,.0f}"),
    ("steps", "optimizer steps", "{:.0f}"),
    ("step_s_median", "step time median (s)", "{:.3f}"),
    ("gradient_checkpointing", "gradient checkpointing", "{}"),
    ("precision", "precision", "{}"),
    ("repeats", "runs (interleaved)", "{}"),
    ("job_seconds", "job wall time (s)", "{:.1f}"),
]
# rows whose ratio means nothing
NO_RATIO = {"gradient_checkpointing", "precision", "repeats", "steps", "computed_tokens",
            "real_tokens"}
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



def fmt(value, pattern: str) -> str:
    if value is None:
        return "—"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def fmt_spread(r: dict, key: str, pattern: str) -> str:
    """The figure, and its spread over repeated runs when there were several."""
    text = fmt(r.get(key), pattern)
    lo, hi, n = (r.get("spread", {}).get(key) or [None, None, 1])[:3]
    if n > 1 and lo is not None and lo != hi:
        text += f" ({fmt(lo, pattern)}–{fmt(hi, pattern)})"
    return text


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


def _derive(r: dict, key: str, f) -> None:
    """``r[key]`` = f(run) as the median over the successful runs (spread kept), or f(r)."""
    runs = [x for x in r.get("runs", []) if "error" not in x]
    values = [v for v in (f(x) for x in runs) if v is not None]
    if values:
        s = median_spread(values)
        r[key] = s["median"]
        r.setdefault("spread", {})[key] = [s["min"], s["max"], s["n"]]
    elif not runs and f(r) is not None:
        r[key] = f(r)


def add_common_count(results: dict[str, dict[str, dict]]) -> None:
    """Trained tokens/s with ONE definition of a trained token for every tool of a scenario.

    Tools disagree on what they train of the same example (a ChatML template whose assistant
    turn ends in ``<|im_end|>\\n`` trains the newline too in trl and LLaMA-Factory: one token
    more per example), so each tool's own count rewards training more tokens. Here every job's
    examples/s is multiplied by lmforge's trained tokens per example on the same data: the
    ratio is then the ratio of the examples each tool gets through per second."""
    for jobs in results.values():
        ours = next((r for label, r in jobs.items() if label.startswith("lmforge")), {})
        if not ours.get("examples") or "real_tokens" not in ours:
            continue
        per_example = ours["real_tokens"] / ours["examples"]
        for r in jobs.values():
            for rate in ("s", "cpu_s"):
                if r.get(f"examples_per_{rate}"):
                    _derive(r, f"common_real_tokens_per_{rate}",
                            lambda x, k=f"examples_per_{rate}": x[k] * per_example
                            if x.get(k) else None)


def peak_for(r: dict, peak: dict) -> float | None:
    """The matmul peak a job is measured against: its precision's, on its device."""
    bf16 = r.get("precision") == "bf16"
    if r.get("device") == "cuda":
        return peak.get("cuda_matmul_flops_bf16" if bf16 else "cuda_matmul_flops")
    return peak.get("matmul_flops_bf16" if bf16 else "matmul_flops")


def add_utilisation(results: dict[str, dict[str, dict]], peak: dict) -> None:
    """Utilisation of every training job, two ways, against the matmul peak probed just before
    its round of jobs (``matmul_peak`` of each run, runner.py), else the run's first probe:
    nominal 6·N·non-pad tokens/s, and the executed FLOPs of bench/flops.py."""
    for jobs in results.values():
        for r in jobs.values():
            def p(x, r=r):  # the peak of run x, else of the aggregated job r, else the run's
                return peak_for(r, x.get("matmul_peak") or r.get("matmul_peak") or peak)

            n = r.get("parameters")
            if not p(r) or not n or "nonpad_tokens_per_s" not in r:
                continue
            _derive(r, "peak_gflops", lambda x: p(x) / 1e9)
            _derive(r, "mfu_nominal", lambda x: 6 * n * x["nonpad_tokens_per_s"] / p(x)
                    if x.get("nonpad_tokens_per_s") is not None else None)
            _derive(r, "mfu_executed", lambda x: x["executed_flops_per_s"] / p(x)
                    if x.get("executed_flops_per_s") else None)
            _derive(r, "executed_gflops", lambda x: x["executed_flops_per_s"] / 1e9
                    if x.get("executed_flops_per_s") else None)
            _derive(r, "executed_per_token", lambda x: x["executed_flops_per_s"] / (
                n * x["nonpad_tokens_per_s"]) if x.get("executed_flops_per_s")
                and x.get("nonpad_tokens_per_s") else None)
            r["repeats"] = len([x for x in r.get("runs", [r]) if "error" not in x])


def _peak_table(jobs: dict) -> dict:
    peak = next(iter(jobs.values()), {})
    rows = [["dense fp32 matmul peak (GFLOP/s)", fmt(peak.get("matmul_flops") and
                                                     peak["matmul_flops"] / 1e9, "{:,.1f}")]]
    if peak.get("matmul_flops_bf16"):
        native = "native" if peak.get("bf16_native") else "emulated by oneDNN"
        rows.append([f"dense bf16 matmul peak (GFLOP/s, {native})",
                     fmt(peak["matmul_flops_bf16"] / 1e9, "{:,.1f}")])
    for key, dtype in (("cuda_matmul_flops", "fp32"), ("cuda_matmul_flops_bf16", "bf16")):
        if peak.get(key):
            rows.append([f"CUDA {dtype} matmul peak (GFLOP/s, {peak.get('gpu')})",
                         fmt(peak[key] / 1e9, "{:,.1f}")])
    return {"columns": ["metric", "value"], "rows": rows, "notes": []}


def notes(jobs: dict[str, dict]) -> list[str]:
    """Skipped tools, failed runs and gate warnings of a scenario, to print under its table."""
    out = []
    for label, r in jobs.items():
        if "skipped" in r:
            out.append(f"{label}: {r['skipped']}")
        if r.get("failed_runs"):
            out.append(f"{label}: {r['failed_runs']} failed run(s): {r['run_errors'][0]}")
        if r.get("eval_error"):
            out.append(f"{label}: held-out loss failed: {r['eval_error']}")
        for w in dict.fromkeys(r.get("gate_warnings", [])):
            out.append(f"{label}: gate: {w}")
    return out


def table(kind: str, jobs: dict[str, dict]) -> dict:
    """{"columns": [...], "rows": [[metric, figures and ratios...], ...], "notes": [...]}
    ready to print: one lmforge column and (reference, ratio) column pairs; preprocessing
    compares single-process with single-process and multi-process with multi-process."""
    if kind == "mfu":
        return _peak_table(jobs)
    metrics = {"generate": GEN_METRICS, "preprocess": PREP_METRICS}.get(kind, TRAIN_METRICS)
    run = {k: v for k, v in jobs.items() if "skipped" not in v}
    cols = pairs(kind, list(run)) if run else []
    grouped = kind == "preprocess"
    header = ["metric"] + ([] if grouped or not cols else [cols[0][0]])
    for mine, ref in cols:
        header += ([mine] if grouped else []) + [ref, f"{mine} / {ref}"]
    rows = []
    for key, label, pattern in metrics:
        if not any(key in run.get(x, {}) for pair in cols for x in pair):
            continue
        row = [label] + ([] if grouped else [fmt_spread(run[cols[0][0]], key, pattern)])
        for mine, ref in cols:
            a, b = run.get(mine, {}), run.get(ref, {})
            r = "" if key in NO_RATIO else fmt(ratio(a.get(key), b.get(key)), "{:.2f}x")
            row += ([fmt_spread(a, key, pattern)] if grouped else []) + [
                fmt_spread(b, key, pattern), r]
        rows.append(row)
    return {"columns": header, "rows": rows, "notes": notes(jobs)}
