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
    parser.add_argument("--tree", action="store_true", help="the module tree with parameter "
                        "counts and how many train (an adapter's parameters where they attach)")
    parser.add_argument("--depth", type=int, default=4, metavar="N", help="levels of --tree "
                        "shown (default 4; identical numbered layers are folded into one)")
    parser.add_argument("--trust-remote-code", action="store_true")


def _fmt(value) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _tree(args):
    from lmforge.errors import ConfigError
    from lmforge.export.tree import module_tree

    if args.gguf_file or args.model.lower().endswith(".gguf"):
        raise ConfigError("--tree needs a model directory, a hub id or a run, not a GGUF file",
                          "convert it first: lmforge info describes a GGUF from its header")
    if args.depth < 1:
        raise ConfigError(f"--depth: must be at least 1 (got {args.depth})")
    return module_tree(args.model, args.adapter, args.trust_remote_code)


def run(args) -> int:
    import contextlib
    import json
    import sys

    from lmforge.export.inspect import model_info

    # with --json, stdout holds only the JSON (some libraries print when imported)
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        info = model_info(args.model, args.adapter, args.trust_remote_code, args.gguf_file)
        tree = _tree(args) if args.tree else None
    if args.json:
        print(json.dumps(dict(info, tree=tree.to_dict()) if tree else info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    if tree is not None:
        from lmforge.export.tree import render

        Console().print(render(tree, args.depth))

    table = Table(title=f"model {args.model}", show_header=False)
    for key, value in info.items():
        if value is not None:
            table.add_row(key, _fmt(value))
    Console().print(table)
    return 0
