"""``python -m bench [SCENARIO ...] [--quick] [--threads N] [--out DIR]``

Scenarios (all when none is named): a sft-tiny, b sft-bbc, c pretrain, d dpo, e generation,
f preprocessing, g mfu. See docs/performance.md for what each measures and the latest table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from bench.scenarios import SCENARIOS, select

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help="keys (a-g) or names; default: all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test whose "
                        "numbers mean little")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per job "
                        "(default: the physical cores)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"),
                        help="where results.json and results.md go (default: runs/bench)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per job")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.key}  {s.name:14s} {s.title}")
        return 0
    scenarios = select(args.scenarios)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from rich.console import Console

    from bench import runner
    from lmforge.training.device import physical_cores

    console = Console()
    threads = args.threads or physical_cores()
    doc = runner.run(scenarios, args.quick, threads, args.out, args.timeout,
                     echo=lambda s: console.print(s, markup=False, highlight=False))
    runner.show(doc, console)
    console.print(f"results: {args.out / 'results.json'}, {args.out / 'results.md'}")
    failed = [f"{k}/{label}" for k, s in doc["scenarios"].items()
              for label, r in s["jobs"].items() if "error" in r]
    if failed:
        console.print(f"[red]failed jobs: {', '.join(failed)}[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
