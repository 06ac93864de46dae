"""lmforge runs: list the runs under a directory with their key metrics and status (done,
running, failed with its error, interrupted, died; tracking/runs.py)."""

from __future__ import annotations

HELP = "list runs under a directory (stage, model, status, losses) as a table or JSON"

# (row key, header): compact, so the table fits 100 columns; empty columns are left out
COLUMNS = (("run", "run"), ("status", "status"), ("stage", "stage"), ("adapter", "adapter"),
           ("learning_rate", "lr"), ("global_step", "steps"), ("train_loss", "train loss"),
           ("eval_loss", "eval loss"), ("train_runtime", "seconds"), ("world_size", "procs"),
           ("model", "model"))
TEXT = {"run", "status", "stage", "adapter", "model"}


def add_arguments(parser) -> None:
    parser.add_argument("dir", nargs="?", default="runs", help="folder to search (default: runs)")
    parser.add_argument("--sort", default="modified",
                        help="sort by: modified (newest first, default), or a metric such as "
                        "eval_loss (ascending)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if value != int(value) or abs(value) < 1 else f"{int(value)}"
    return str(value)


def run(args) -> int:
    import json
    from pathlib import Path

    from lmforge.errors import ConfigError
    from lmforge.tracking.runs import list_runs

    root = Path(args.dir)
    if not root.is_dir():
        raise ConfigError(f"runs: '{root}' is not a directory")
    rows = list_runs(root, args.sort)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    from lmforge.config.constants import RUN_CONFIG_FILE

    console = Console(width=max(Console().width, 120))
    if not rows:
        console.print(f"no runs under {root} (a run directory holds {RUN_CONFIG_FILE})")
        return 0
    columns = [(k, h) for k, h in COLUMNS if any(r.get(k) is not None for r in rows)]
    table = Table(title=f"runs in {root}")
    for key, header in columns:
        table.add_column(header, justify="left" if key in TEXT else "right",
                         no_wrap=key in ("run", "status"), overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row.get(k)) for k, _ in columns])
    console.print(table)
    from rich.markup import escape

    for row in rows:  # why a run failed (or what is odd about it), below the table
        if row.get("error"):
            console.print(f"[bold]{escape(row['run'])}[/] {row['status']}: "
                          f"{escape(row['error'])}", soft_wrap=True)
    return 0
