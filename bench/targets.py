"""The issue's goals, judged on the figures of the same run (medians of the repetitions).

Speed is compared on trained tokens/s with one count (lmforge's labels per example, see
report.add_common_count) and only at equal quality: the held-out loss of lmforge's adapter may
be at most ``MATCH`` above the reference's, both scored by the same function.
"""

from __future__ import annotations

from bench.report import fmt, ratio

MATCH = 0.02  # "equal held-out loss": lmforge's within 2 % of the reference's
LF, LF_FAIR, TRL, TRL_FAIR = "LLaMA-Factory", "LLaMA-Factory fair", "TRL", "TRL fair"
# (scenario, reference, goal): trained tokens/s of lmforge over the reference
SPEED_GOALS = [("b", LF, 2.0), ("ap", LF, 1.3), ("a", LF_FAIR, 1.2), ("ap", LF_FAIR, 1.2),
               ("b", LF_FAIR, 1.2), ("a", TRL, 1.5), ("b", TRL, 2.0)]
EXECUTED_GOAL = 0.70  # executed-FLOP utilisation of lmforge on SmolLM2 LoRA (b)


def target(name: str, value, goal: str, met: bool | None, note: str = "") -> dict:
    return {"target": name, "value": value, "goal": goal, "met": met, "note": note}


def _tps_key(ours: dict, ref: dict) -> str:
    common = "common_real_tokens_per_s"
    return common if common in ours and common in ref else "real_tokens_per_s"


def speed(key: str, jobs: dict, ref_label: str, goal: float) -> dict:
    ours, ref = jobs.get("lmforge", {}), jobs.get(ref_label, {})
    name = f"({key}) trained tokens/s vs {ref_label}, at equal held-out loss"
    if "skipped" in ref:
        return target(name, "—", f">= {goal}x", None, ref["skipped"])
    k = _tps_key(ours, ref)
    r = ratio(ours.get(k), ref.get(k))
    la, lb = ours.get("eval_loss"), ref.get("eval_loss")
    equal = la is not None and lb is not None and la <= lb * (1 + MATCH)
    note = f"held-out loss {fmt(la, '{:.4f}')} vs {fmt(lb, '{:.4f}')}" + (
        "; one count of trained tokens" if k.startswith("common") else "")
    return target(name, fmt(r, "{:.2f}x"), f">= {goal}x, loss within {MATCH:.0%}",
                  None if r is None else (r >= goal and equal), note)


def memory(key: str, jobs: dict) -> dict | None:
    ours, lf = jobs.get("lmforge", {}), jobs.get(LF, {})
    if "skipped" in lf or "peak_rss_mb" not in ours:
        return None
    a, b = ours["peak_rss_mb"], lf.get("peak_rss_mb")
    return target(f"({key}) peak RSS vs LLaMA-Factory", f"{fmt(a, '{:,.0f}')} MiB",
                  f"<= {fmt(b, '{:,.0f}')} MiB", None if b is None else a <= b)


def _other(results: dict) -> list[dict]:
    out = []
    if "c" in results:
        pad = results["c"].get("lmforge", {}).get("pad_fraction")
        out.append(target("(c) pad fraction with packing", fmt(pad, "{:.1%}"), "<= 3%",
                          None if pad is None else pad <= 0.03))
    if "e" in results:
        jobs = results["e"]
        r = ratio(jobs.get("lmforge batched", {}).get("tokens_per_s"),
                  jobs.get("one-by-one", {}).get("tokens_per_s"))
        out.append(target("(e) batched generation vs one-by-one", fmt(r, "{:.1f}x"), ">= 5x",
                          None if r is None else r >= 5))
    for label, r in results.get("f", {}).items():
        if label.startswith("lmforge"):
            eps, tok = r.get("examples_per_s"), r.get("tokenizer_examples_per_s")
            note = "" if tok is None else (
                f"the Rust tokenizer alone: {tok:,.0f} ex/s on 2 threads "
                f"({fmt(r.get('tokenizer_1t_examples_per_s'), '{:,.0f}')} on 1), so the "
                f"pipeline runs at {fmt(r.get('of_tokenizer'), '{:.0%}')} of it; load "
                f"{fmt(r.get('load_average'), '{:.1f}')}")
            out.append(target(f"(f) preprocessing, {label}", fmt(eps, "{:,.0f} ex/s"),
                              ">= 10,000 ex/s", None if eps is None else eps >= 10_000, note))
    return out


def targets(results: dict[str, dict[str, dict]]) -> list[dict]:
    out = [speed(key, results[key], ref, goal) for key, ref, goal in SPEED_GOALS
           if key in results and ref in results[key]]
    if "b" in results:
        u = results["b"].get("lmforge", {}).get("mfu_executed")
        out.append(target("(b) executed-FLOP utilisation, lmforge", fmt(u, "{:.1%}"),
                          f">= {EXECUTED_GOAL:.0%}", None if u is None else u >= EXECUTED_GOAL,
                          "executed matmul FLOPs (bench/flops.py) ÷ the matmul peak probed "
                          "before each round of jobs"))
    out += [m for m in (memory(k, results[k]) for k in ("a", "ap", "b") if k in results) if m]
    return out + _other(results)
