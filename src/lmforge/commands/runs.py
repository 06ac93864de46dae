"""lmforge runs: list the runs under a directory with their key metrics."""

from __future__ import annotations

HELP = "list runs under a directory (stage, model, status, losses) as a table or JSON"

COLUMNS = ("run", "status", "stage", "adapter", "learning_rate", "global_step", "train_loss",
           "eval_loss", "train_runtime", "world_size", "model")


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

    console = Console()
    if not rows:
        console.print(f"no runs under {root} (a run directory holds lmforge_config.yaml)")
        return 0
    table = Table(title=f"runs in {root}")
    for col in COLUMNS:
        table.add_column(col, justify="right" if col not in ("run", "status", "stage", "adapter",
                                                             "model") else "left")
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in COLUMNS])
    console.print(table)
    return 0
