"""lmforge info: show a model's structure and parameter counts."""

from __future__ import annotations

HELP = "show a model's architecture, sizes and parameter counts (with --adapter: trainable too)"


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model directory, hub id in the cache, or builtin:<name>")
    parser.add_argument("--adapter", help="a saved peft adapter directory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--trust-remote-code", action="store_true")


def run(args) -> int:
    import json

    from lmforge.export.inspect import model_info

    info = model_info(args.model, args.adapter, args.trust_remote_code)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model {args.model}", show_header=False)
    for key, value in info.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) and not isinstance(
            value, bool) else str(value))
    Console().print(table)
    return 0
