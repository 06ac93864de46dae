"""``python -m bench [SCENARIO ...] [--quick] [--threads N] [--out DIR]``

Scenarios (all when none is named): a sft-tiny, ap sft-tiny-packed, b sft-bbc, c pretrain,
d dpo, e generation, f preprocessing, g mfu. See docs/performance.md for what each measures and
the latest table. LLaMA-Factory runs from its own venv (`make bench-peers`); without it, its
jobs are skipped and the reason is printed.
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
    parser.add_argument("scenarios", nargs="*", help="keys (a, ap, b-g) or names; default: all")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test whose "
                        "numbers mean little")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per job "
                        "(default: the physical cores)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"),
                        help="where results.json and results.md go (default: runs/bench)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per job")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved runs of each "
                        "job (default: 3 for the SFT scenarios a, ap, b, 1 with --quick)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="the precision every tool trains in (default: fp32)")
    parser.add_argument("--gate-timeout", type=float, default=60.0, help="seconds to wait "
                        "before a job for other processes to use < 0.5 core (then it runs "
                        "with a warning in the results; default: 60)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            print(f"{s.key:3s} {s.name:16s} {s.title}")
        return 0
    scenarios = select(args.scenarios)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from rich.console import Console

    from bench import runner
    from lmforge.training.cpu_threads import physical_cores

    console = Console(width=None if sys.stdout.isatty() else 250)  # tables unwrapped in logs
    threads = args.threads or physical_cores()
    doc = runner.run(scenarios, args.quick, threads, args.out, args.timeout,
                     echo=lambda s: console.print(s, markup=False, highlight=False),
                     precision=args.precision, repeats=args.repeats,
                     gate_timeout=args.gate_timeout)
    runner.show(doc, console)
    console.print(f"results: {args.out / 'results.json'}, {args.out / 'results.md'}")
    failed = [f"{k}/{label}" for k, s in doc["scenarios"].items()
              for label, r in s["jobs"].items() if "error" in r or r.get("failed_runs")]
    if failed:
        console.print(f"[red]failed jobs: {', '.join(failed)}[/]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
