"""``lmforge`` command line. Commands live in ``lmforge/commands/<name>.py``; each module defines
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int`` and imports only the standard library at
module level, so ``lmforge --help`` stays instant. Heavy imports happen inside ``run``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from lmforge import __version__


def _command_modules() -> dict[str, object]:
    import lmforge.commands as pkg

    mods = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"lmforge.commands.{info.name}")
        mods[getattr(mod, "NAME", info.name.replace("_", "-"))] = mod
    return dict(sorted(mods.items()))


def build_parser(commands: dict | None = None) -> argparse.ArgumentParser:
    """The parser; ``commands``, when given, receives each command's sub-parser by name."""
    parser = argparse.ArgumentParser(
        prog="lmforge", description="Fine-tune causal language models from one config file.")
    parser.add_argument("--version", action="version", version=f"lmforge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _command_modules().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        p.set_defaults(_overrides=False)  # add_run_arguments (or the command) turns it on
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
        if commands is not None:
            commands[name] = p
    return parser


def main(argv: list[str] | None = None) -> int:
    from lmforge.commands._runargs import extract_overrides, value_options

    program = argv is None  # the real command line (a test calling main([...]) keeps its logs)
    argv = list(sys.argv[1:] if argv is None else argv)
    commands: dict[str, argparse.ArgumentParser] = {}
    parser = build_parser(commands)
    # overrides (key=value, --D.key=value, --M.key=value) are taken out before argparse sees
    # them; the chosen command's options that take a value keep theirs
    name = next((tok for tok in argv if not tok.startswith("-")), None)
    argv, overrides = extract_overrides(
        argv, value_options(commands[name]) if name in commands else frozenset())
    args = parser.parse_args(argv)
    args.overrides = overrides
    given = overrides.data + overrides.model + overrides.merged
    if given and getattr(args, "_run", None) and not args._overrides:
        commands[args.command].error(  # exit 2, like any argument this command does not take
            f"{args.command} takes no config overrides (got {', '.join(given)}); they apply "
            "to run configs: lmforge train/validate/eval/data/sweep RUN.yaml key.path=value")
    if program:
        from lmforge.utils import quiet

        quiet.apply(debug=getattr(args, "debug", False))  # library noise off unless --debug
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    from lmforge.errors import LmforgeError

    try:
        return int(args._run(args) or 0)
    except LmforgeError as exc:
        if getattr(args, "debug", False):
            raise
        from lmforge.utils.secrets import redact  # an echoed URL or header may hold a key

        print(f"error: {redact(exc.message)}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {redact(exc.hint)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
