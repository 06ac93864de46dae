"""The end of a sweep: a table of the trials, ``sweep_summary.json``, ``best_config.yaml`` (the
best trial's resolved config) and ``sweep.png`` (objective per trial with the best so far, and
the parameter importances when Optuna can compute them)."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

from lmforge.config.constants import RUN_CONFIG_FILE

log = logging.getLogger(__name__)


def rows(study) -> list[dict]:
    out = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.value is not None and not math.isnan(t.value) else None
        seconds = t.duration.total_seconds() if t.duration is not None else None
        out.append({"number": t.number, "state": t.state.name.lower(), "value": value,
                    "params": dict(t.params), "output_dir": t.user_attrs.get("output_dir"),
                    "seconds": seconds, "error": t.user_attrs.get("error"),
                    "resumed_from": t.user_attrs.get("resumed_from")})
    return out


def best(study):
    try:
        return study.best_trial
    except ValueError:  # no completed trial
        return None


def importances(study) -> dict[str, float]:
    import optuna

    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        log.debug("no parameter importances: %s", exc)
        return {}


def plot(study, path: Path, metric: str, weights: dict[str, float]) -> bool:
    """History (completed trials, pruned ones at their last reported value) + importances."""
    trials = [t for t in study.get_trials(deepcopy=False)
              if t.value is not None and not math.isnan(t.value)]
    complete = [(t.number, t.value) for t in trials if t.state.name == "COMPLETE"]
    pruned = [(t.number, t.value) for t in trials if t.state.name == "PRUNED"]
    if not trials:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    better = min if study.direction.name == "MINIMIZE" else max
    panels = 2 if weights else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0][0]
    if complete:
        xs, ys = zip(*complete)
        ax.scatter(xs, ys, label=f"{metric} (completed)")
        running = [better(ys[: i + 1]) for i in range(len(ys))]
        ax.step(xs, running, where="post", color="tab:red", label="best so far")
    if pruned:
        xs, ys = zip(*pruned)
        ax.scatter(xs, ys, marker="x", color="gray", label="pruned (last report)")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("optimization history")
    ax.legend()
    if weights:
        names = list(weights)[::-1]
        axes[0][1].barh(names, [weights[n] for n in names])
        axes[0][1].set_title("parameter importance (completed trials)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def table(items: list[dict], metric: str, best_number: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    names = sorted({k for r in items for k in r["params"]})
    t = Table(title=f"sweep: {metric}")
    for col in ["trial", "state", metric, *names, "seconds"]:
        t.add_column(col, justify="right" if col not in ("state",) else "left")
    for r in items:
        mark = "*" if r["number"] == best_number else ""
        value = f"{r['value']:.5g}" if r["value"] is not None else "-"
        seconds = f"{r['seconds']:.0f}" if r["seconds"] is not None else "-"
        t.add_row(f"{r['number']}{mark}", r["state"], value,
                  *[str(r["params"].get(n, "-")) for n in names], seconds)
    Console().print(t)


def write(study, setup, opts) -> dict:
    """Print the table and write the summary files into the sweep directory."""
    directory = setup.directory
    items = rows(study)
    top = best(study)
    weights = importances(study) if top is not None else {}
    summary = {"metric": opts.metric, "direction": opts.direction, "trials": items,
               "best": None, "importances": weights}
    if top is not None:
        summary["best"] = {"number": top.number, "value": top.value, "params": top.params,
                           "output_dir": top.user_attrs.get("output_dir")}
        config = Path(top.user_attrs.get("output_dir") or "") / RUN_CONFIG_FILE
        if config.is_file():
            shutil.copyfile(config, directory / "best_config.yaml")
    (directory / "sweep_summary.json").write_text(json.dumps(summary, indent=2, default=str),
                                                  encoding="utf-8")
    plot(study, directory / "sweep.png", opts.metric, weights)
    table(items, opts.metric, top.number if top is not None else None)
    if top is not None:
        log.info("best: trial %d, %s=%.5g, %s", top.number, opts.metric, top.value,
                 " ".join(f"{k}={v}" for k, v in top.params.items()))
    return summary
