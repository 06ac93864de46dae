"""``lmforge train ... --nproc N`` re-executes itself under torchrun (``torch.distributed.run``).

torchrun rather than ``accelerate launch``: ``accelerate launch --cpu --num_processes 2`` silently
starts one process, torchrun starts N on GPUs and CPUs alike (gloo on the CPU). Both work when
run by hand (``torchrun --nproc_per_node 2 -m lmforge train ...``, ``accelerate launch -m lmforge
train ...``): the stages read the launcher's environment. One node: ``--standalone`` (torchrun
picks a free port). Several nodes: the same command on each, with ``--node-rank`` and the
address of node 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

LAUNCHED_ENV = "LMFORGE_LAUNCHED"  # set in the children: never re-launch twice


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("multi-process launch (torchrun)")
    group.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="processes per node (one per GPU; on the CPU, gloo processes)")
    group.add_argument("--nnodes", type=int, default=1, metavar="M", help="number of nodes")
    group.add_argument("--node-rank", type=int, default=0, metavar="R",
                       help="this node's rank (0 .. nnodes-1)")
    group.add_argument("--master-addr", metavar="A", help="address of node 0 (several nodes)")
    group.add_argument("--master-port", type=int, metavar="P",
                       help="port on node 0 (default: a free port on one node, 29500 on several)")


def wants_launch(args) -> bool:
    """True when this invocation should re-execute itself under torchrun."""
    if os.environ.get(LAUNCHED_ENV) or os.environ.get("WORLD_SIZE"):
        return False  # already inside a launcher
    return getattr(args, "nproc", 1) > 1 or getattr(args, "nnodes", 1) > 1


def check(args) -> None:
    from lmforge.errors import ConfigError

    problems = []
    if args.nproc < 1:
        problems.append(f"--nproc: must be at least 1, got {args.nproc}")
    if args.nnodes < 1:
        problems.append(f"--nnodes: must be at least 1, got {args.nnodes}")
    elif not 0 <= args.node_rank < args.nnodes:
        problems.append(f"--node-rank: must be in 0..{args.nnodes - 1}, got {args.node_rank}")
    if args.nnodes > 1 and not args.master_addr:
        problems.append("--master-addr: required with --nnodes > 1 (the address of node 0)")
    if problems:
        raise ConfigError(problems, hint="see lmforge train --help")


def command_argv(args, command: str = "train") -> list[str]:
    """The lmforge arguments that reproduce ``args`` (without the launch options)."""
    argv = [command]
    if getattr(args, "debug", False):
        argv.append("--debug")
    if args.config:
        argv.append(args.config)
    if args.data_config:
        argv += ["--data", args.data_config]
    if args.model_config:
        argv += ["--model", args.model_config]
    ov = args.overrides
    argv += [f"--D.{o}" for o in ov.data] + [f"--M.{o}" for o in ov.model] + list(ov.merged)
    return argv


def torchrun_argv(args, command: str = "train", log_dir: str | None = None) -> list[str]:
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.nproc)]
    if log_dir:  # else torchrun makes a torchelastic_* directory in $TMPDIR and leaves it there
        run += ["--log-dir", log_dir]
    if args.nnodes == 1 and not args.master_addr and not args.master_port:
        run.append("--standalone")
    else:
        run += ["--nnodes", str(args.nnodes), "--node_rank", str(args.node_rank),
                "--master_addr", args.master_addr or "127.0.0.1",
                "--master_port", str(args.master_port or 29500)]
    return run + ["-m", "lmforge"] + command_argv(args, command)


def relaunch(args, command: str = "train") -> int:
    """Run this command under torchrun and return its exit status."""
    import logging

    check(args)
    env = dict(os.environ, **{LAUNCHED_ENV: "1"})
    # torchrun would set 1 (with a banner); a fair share of the cores is better on the CPU
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    with tempfile.TemporaryDirectory(prefix="lmforge-torchrun-") as logs:
        argv = torchrun_argv(args, command, log_dir=logs)
        logging.getLogger(__name__).info("launching %d process(es) per node: %s", args.nproc,
                                         " ".join(argv[1:]))
        try:
            return subprocess.run(argv, env=env).returncode
        except KeyboardInterrupt:
            return 130
