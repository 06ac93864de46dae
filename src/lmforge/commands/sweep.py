"""lmforge sweep: hyperparameter search with Optuna over a run config (extra ``sweep``)."""

from __future__ import annotations

import argparse

from lmforge.commands._runargs import add_run_arguments

HELP = "hyperparameter search (Optuna): each trial is a run in <dir>/trial_<n>"


def add_arguments(parser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--space", required=True, metavar="FILE",
                        help="search space YAML: config.path: {log_uniform|uniform|int: [low, "
                        "high]} or {choice: [...]}")
    parser.add_argument("--trials", type=int, default=10, metavar="N",
                        help="trials to complete (a resumed sweep counts those already done)")
    parser.add_argument("--metric", default="eval_loss",
                        help="metric of the run's metrics.json to optimise (default eval_loss)")
    parser.add_argument("--direction", choices=("minimize", "maximize"), default="minimize")
    parser.add_argument("--jobs", type=int, default=1, metavar="J",
                        help="trials at once, in J worker processes (one GPU each)")
    parser.add_argument("--sampler", choices=("tpe", "random", "grid"), default="tpe")
    parser.add_argument("--pruner", choices=("median", "none"), default="median",
                        help="stop trials whose eval metric trails the median (needs eval steps)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--dir", metavar="DIR",
                        help="sweep directory (default: the config's train.output_dir); holds "
                        "study.db, trial_<n>/, sweep_summary.json, sweep.png")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def _argv(args) -> list[str]:
    """This command's arguments for the worker processes."""
    from lmforge.distributed.launch import command_argv

    argv = command_argv(args, "sweep") + ["--space", args.space, "--trials", str(args.trials),
                                          "--metric", args.metric, "--direction", args.direction,
                                          "--sampler", args.sampler, "--pruner", args.pruner,
                                          "--seed", str(args.seed)]
    return argv + (["--dir", args.dir] if args.dir else [])


def run(args) -> int:
    from pathlib import Path

    from lmforge.commands._runargs import load_run
    from lmforge.errors import require
    from lmforge.utils.logs import setup as setup_logs

    setup_logs()
    require("optuna", "sweep", "lmforge sweep")
    from lmforge.sweep.runner import Options, run_sweep
    from lmforge.sweep.space import load_space
    from lmforge.sweep.trial import Setup

    cfg = load_run(args)
    dims, raw = load_space(args.space)
    directory = Path(args.dir or cfg.train.output_dir)
    setup = Setup(args.config, args.data_config, args.model_config, args.overrides, dims,
                  directory, args.metric)
    opts = Options(args.trials, args.metric, args.direction, args.jobs, args.sampler,
                   args.pruner, args.seed)
    return run_sweep(setup, opts, raw, _argv(args), worker=args.worker)
