"""lmforge info: show a model's structure and parameter counts (models, runs, adapters, GGUF)."""

from __future__ import annotations

HELP = ("show a model's architecture, sizes and parameter counts (also for a run/adapter "
        "directory, with --adapter, or a .gguf file)")


def add_arguments(parser) -> None:
    parser.add_argument("model", help="model directory, hub id in the cache, builtin:<name>, a "
                        ".gguf file, or a run/adapter directory")
    parser.add_argument("--adapter", help="a saved peft adapter directory to add")
    parser.add_argument("--gguf-file", help="GGUF file name inside the model directory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--trust-remote-code", action="store_true")


def _fmt(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def run(args) -> int:
    import contextlib
    import json
    import sys

    from lmforge.export.inspect import model_info

    # with --json, stdout holds only the JSON (some libraries print when imported)
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        info = model_info(args.model, args.adapter, args.trust_remote_code, args.gguf_file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model {args.model}", show_header=False)
    for key, value in info.items():
        if value is not None:
            table.add_row(key, _fmt(value))
    Console().print(table)
    return 0
