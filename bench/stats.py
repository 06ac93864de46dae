"""Repetitions of one benchmark job folded into one figure per metric: the median, with the
spread (min-max) and the number of runs kept beside it."""

from __future__ import annotations

import statistics


def median_spread(values: list[float]) -> dict:
    """{"median", "min", "max", "n"} of ``values`` (at least one)."""
    if not values:
        raise ValueError("median_spread: no values")
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def aggregate(runs: list[dict]) -> dict:
    """One result from the repetitions of a job: every number that all successful runs report
    becomes their median (``spread[key]`` holds min, max, n), everything else comes from the
    first successful run; ``runs`` keeps them all. Failed runs are counted in
    ``failed_runs``; when all failed, the result is the first one's error."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return dict(runs[0], runs=runs) if runs else {"error": "no runs"}
    out = dict(ok[0])
    spread = {}
    for key, value in ok[0].items():
        if _number(value) and all(_number(r.get(key)) for r in ok):
            s = median_spread([r[key] for r in ok])
            out[key] = s["median"]
            spread[key] = [s["min"], s["max"], s["n"]]
    out["spread"] = spread
    out["runs"] = runs
    failed = len(runs) - len(ok)
    if failed:
        out["failed_runs"] = failed
        out["run_errors"] = [r["error"] for r in runs if "error" in r]
    warnings = [r["gate"]["warning"] for r in runs if r.get("gate", {}).get("warning")]
    if warnings:
        out["gate_warnings"] = warnings
    return out
