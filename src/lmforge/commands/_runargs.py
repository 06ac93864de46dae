"""Arguments shared by every command that takes a run config: a run file and/or a data file and a
model file, plus overrides ``--D.a.b=v`` (data file), ``--M.a.b=v`` (model file), ``a.b=v`` (merged).
argparse cannot express ``--D.<anything>``, so those tokens are taken out of argv first."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

_PLAIN = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)+=")


@dataclass
class Overrides:
    data: list[str] = field(default_factory=list)
    model: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)


def extract_overrides(argv: list[str]) -> tuple[list[str], Overrides]:
    rest, ov = [], Overrides()
    for tok in argv:
        if tok.startswith("--D."):
            ov.data.append(tok[4:])
        elif tok.startswith("--M."):
            ov.model.append(tok[4:])
        elif _PLAIN.match(tok):
            ov.merged.append(tok)
        else:
            rest.append(tok)
    return rest, ov


def add_run_arguments(parser: argparse.ArgumentParser, config_required: bool = False) -> None:
    parser.add_argument("config", nargs="?" if not config_required else None,
                        help="run config YAML (optional when --data and --model are given)")
    parser.add_argument("--data", dest="data_config", metavar="FILE",
                        help="data config YAML (merged with --model)")
    parser.add_argument("--model", dest="model_config", metavar="FILE",
                        help="model config YAML (merged with --data)")
    parser.epilog = ("overrides: --D.key.path=value (data file), --M.key.path=value (model file), "
                     "key.path=value (merged run); values are YAML scalars")


def load_run(args):
    from lmforge.config import load

    ov = args.overrides
    return load(args.config, args.data_config, args.model_config, ov.merged, ov.data, ov.model)
