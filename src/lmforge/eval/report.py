"""Files and tables of ``lmforge eval``: predictions.jsonl, eval_metrics.json, rich tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable


def write_jsonl(path: Path, records: Iterable[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False),
                    encoding="utf-8")
    return path


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def metrics_table(results: dict[str, dict], title: str = "evaluation"):
    """One row per metric, one column per model (``{label: metrics}``), plus the change when
    two models are compared."""
    from rich.table import Table

    labels = list(results)
    table = Table(title=title)
    table.add_column("metric", style="bold")
    for label in labels:
        table.add_column(label, justify="right")
    if len(labels) == 2:
        table.add_column("change", justify="right")
    keys = list(dict.fromkeys(k for m in results.values() for k in m))
    for key in keys:
        row = [key] + [_fmt(results[label].get(key)) for label in labels]
        if len(labels) == 2:
            a, b = (results[label].get(key) for label in labels)
            both = isinstance(a, (int, float)) and isinstance(b, (int, float))
            row.append(f"{a - b:+.4f}" if both else "-")
        table.add_row(*row)
    return table


def benchmark_table(results: dict, title: str):
    from rich.table import Table

    table = Table(title=title)
    for name, justify in (("subject", "left"), ("accuracy", "right"), ("correct", "right"),
                          ("questions", "right")):
        table.add_column(name, justify=justify)
    for subject, r in results["subjects"].items():
        table.add_row(subject, _fmt(r["accuracy"]), str(r["correct"]), str(r["total"]))
    table.add_row("[bold]overall[/]", f"[bold]{results['accuracy']:.4f}[/]",
                  str(results["correct"]), str(results["total"]))
    table.add_row("subject mean", _fmt(results["accuracy_macro"]), "", "")
    return table
