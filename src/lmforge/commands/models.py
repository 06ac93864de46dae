"""lmforge models: list the built-in model names, whether each is installed and already cached."""

from __future__ import annotations

HELP = "list built-in models (model.path: builtin:<name>) and whether each is available"


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def rows() -> list[dict]:
    from lmforge.utils.builtin import BUILTINS, builtin_dir, is_cached

    out = []
    for name, entry in BUILTINS.items():
        cached = is_cached(name)
        installed = entry.installed()
        out.append({"name": f"builtin:{name}", "installed": installed, "cached": cached,
                    "state": "ready" if cached else ("installed" if installed else "missing"),
                    "path": str(builtin_dir(name)) if cached else None,
                    "install": None if installed or cached else entry.install,
                    "description": entry.description})
    return out


def run(args) -> int:
    import json

    table = rows()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    for r in table:
        print(f"{r['name']:<32} {r['state']:<10} {r['description']}")
        if r["install"]:
            print(f"{'':<32} {'':<10} install: {r['install']}")
    print("\nready = built/converted in the cache; installed = built on first use; "
          "missing = install first")
    return 0
