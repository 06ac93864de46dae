"""lmforge models: list the built-in model names."""

from __future__ import annotations

HELP = "list built-in models (model.path: builtin:<name>) and whether each is available"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true")


def run(args) -> int:
    import json

    from lmforge.utils.builtin import BUILTINS, cache_root

    rows = []
    for name, (desc, _build, installed) in BUILTINS.items():
        cached = (cache_root() / "models" / name / "config.json").is_file()
        rows.append({"name": f"builtin:{name}", "available": installed(), "cached": cached,
                     "description": desc})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = "ready" if r["cached"] else ("available" if r["available"] else "not installed")
        print(f"{r['name']:<34} {state:<14} {r['description']}")
    return 0
