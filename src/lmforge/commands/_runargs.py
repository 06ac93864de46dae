"""Arguments shared by every command that takes a run config: a run file and/or a data file and a
model file, plus overrides ``--D.a.b=v`` (data file), ``--M.a.b=v`` (model file), ``a.b=v`` (merged).
argparse cannot express ``--D.<anything>``, so those tokens are taken out of argv first."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

# key=value or key.path=value (a top-level key too: stage=dpo, adapter={type: lora, r: 8})
_PLAIN = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)*=")


@dataclass
class Overrides:
    data: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)


def extract_overrides(argv: list[str], value_options: frozenset[str] = frozenset()
                      ) -> tuple[list[str], Overrides]:
    """Take the overrides out of ``argv``. The token after an option in ``value_options`` is that
    option's value (``--system a=b`` stays an option value), and everything after ``--`` is left
    to the command."""
    rest, ov = [], Overrides()
    tokens = iter(argv)
    for tok in tokens:
        if tok == "--":
            rest.append(tok)
            rest.extend(tokens)
        elif tok in value_options:
            rest.append(tok)
            value = next(tokens, None)
            if value is not None:
                rest.append(value)
        elif tok.startswith("--D."):
            ov.data.append(tok[4:])
        elif tok.startswith("--M."):
            ov.model.append(tok[4:])
        elif _PLAIN.match(tok):
            ov.merged.append(tok)
        else:
            rest.append(tok)
    return rest, ov


def value_options(parser: argparse.ArgumentParser) -> frozenset[str]:
    """The option strings of ``parser`` (and its sub-commands) that take a value; argparse keeps
    its actions in the long-stable ``_actions`` list and has no public accessor."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):  # lmforge data preview ...
            for sub in action.choices.values():
                found |= value_options(sub)
        elif action.nargs not in (0, "?"):
            found.update(action.option_strings)
    return frozenset(found)


def add_run_arguments(parser: argparse.ArgumentParser, config_required: bool = False) -> None:
    parser.add_argument("config", nargs="?" if not config_required else None,
                        help="run config YAML (optional when --data and --model are given)")
    parser.add_argument("--data", dest="data_config", metavar="FILE",
                        help="data config YAML (merged with --model)")
    parser.add_argument("--model", dest="model_config", metavar="FILE",
                        help="model config YAML (merged with --data)")
    parser.set_defaults(_overrides=True)  # cli.py refuses overrides elsewhere
    parser.epilog = ("overrides: key.path=value or key=value (the merged run: stage=dpo, "
                     "'adapter={type: lora, r: 8}' replaces the whole block), --D.key.path=value "
                     "(data file), --M.key.path=value (model file); values are YAML")


def load_run(args):
    from lmforge.config import load

    ov = args.overrides
    return load(args.config, args.data_config, args.model_config, ov.merged, ov.data, ov.model)
