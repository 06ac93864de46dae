"""Tables and targets from the jobs' results: every lmforge figure next to the reference figure
measured in the same run, and their ratio (lmforge / reference)."""

from __future__ import annotations

# (key, label, format); ratios are lmforge / reference for every row
TRAIN_METRICS = [
    ("real_tokens_per_s", "real (trained) tokens/s", "{:,.0f}"),
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
PREP_METRICS = [("examples_per_s", "examples/s", "{:,.0f}"), ("examples", "examples", "{:,}"),
                ("blocks", "packed blocks", "{:,}"), ("seconds", "seconds", "{:.1f}"),
                ("peak_rss_mb", "peak RSS (MiB)", "{:,.0f}")]

# the figures for LLaMA-Factory and TRL on this machine class (idle, 2 threads)
LLAMA_FACTORY = {"a": {"lf": 3900.0, "trl": 2900.0}, "b": {"lf": 142.0, "trl": 108.0}}
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


def _sft_targets(key: str, jobs: dict, goal: float) -> list[dict]:
    ours, trl = jobs.get("lmforge", {}), jobs.get("trl", {})
    r = ratio(ours.get("real_tokens_per_s"), trl.get("real_tokens_per_s"))
    la, lb = ours.get("eval_loss"), trl.get("eval_loss")
    matching = la is not None and lb is not None and la <= lb * (1 + MATCH)
    out = [_target(f"({key}) real tokens/s vs TRL defaults, at matching held-out loss",
                   fmt(r, "{:.2f}x"), f">= {goal}x, loss within {MATCH:.0%}",
                   None if r is None else (r >= goal and matching),
                   f"held-out loss {fmt(la, '{:.4f}')} vs {fmt(lb, '{:.4f}')}")]
    lf = LLAMA_FACTORY[key]
    lf_ratio = lf["lf"] / lf["trl"]
    out.append(_target(f"({key}) above LLaMA-Factory (its speed-up over TRL in the issue)",
                       fmt(r, "{:.2f}x"), f"> {lf_ratio:.2f}x",
                       None if r is None else r > lf_ratio,
                       "the issue measured LLaMA-Factory at {:,.0f} vs TRL {:,.0f} real tok/s"
                       .format(lf["lf"], lf["trl"])))
    tps = ours.get("real_tokens_per_s")
    out.append(_target(f"({key}) above LLaMA-Factory's absolute figure", fmt(tps, "{:,.0f}"),
                       f"> {lf['lf']:,.0f} real tok/s", None if tps is None else tps > lf["lf"],
                       "absolute: only meaningful on an idle machine like the issue's"))
    return out


def targets(results: dict[str, dict[str, dict]]) -> list[dict]:
    out = []
    if "a" in results:
        out += _sft_targets("a", results["a"], 1.5)
    if "b" in results:
        out += _sft_targets("b", results["b"], 2.0)
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
                eps = r.get("examples_per_s")
                out.append(_target(f"(f) preprocessing, {label}", fmt(eps, "{:,.0f} ex/s"),
                                   ">= 10,000 ex/s", None if eps is None else eps >= 10_000))
    for key in ("a", "b", "c"):
        m = results.get(key, {}).get("lmforge", {}).get("mfu")
        if m is not None:
            out.append(_target(f"({key}) MFU, lmforge", fmt(m, "{:.1%}"), "reported", None))
    return out
