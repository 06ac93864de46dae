"""lmforge convert: translate another tool's training config into an lmforge run config."""

from __future__ import annotations

import sys

HELP = "convert a LLaMA-Factory train config into an lmforge run config (lists what it cannot map)"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    lf = sub.add_parser("llamafactory", help="a LLaMA-Factory train YAML (llamafactory-cli train)",
                        description="a LLaMA-Factory train YAML (llamafactory-cli train)")
    lf.add_argument("file", help="the LLaMA-Factory YAML file")
    lf.add_argument("-o", "--output", metavar="FILE",
                    help="write the run config here (default: standard output)")


def _report(conv, out) -> None:
    for key, what in conv.notes:
        print(f"note: {key}: {what}", file=out)
    if conv.unmapped:
        print(f"not mapped ({len(conv.unmapped)}):", file=out)
        for key, why in conv.unmapped:
            print(f"  {key}: {why}", file=out)


def run(args) -> int:
    from pathlib import Path

    import yaml

    from lmforge.config.loader import read_yaml
    from lmforge.convert import llamafactory

    conv = llamafactory.convert(read_yaml(args.file, "LLaMA-Factory config"))
    text = (f"# converted from {args.file} by lmforge convert llamafactory\n"
            + yaml.safe_dump(conv.ordered(), sort_keys=False, allow_unicode=True))
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}; check it with: lmforge validate {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    _report(conv, sys.stderr)
    return 0
