"""The sweep driver: open (or resume) the study, run the trials, write the report.

``jobs == 1``: trials run in this process, one after the other. ``jobs > 1``: that many worker
processes (``lmforge sweep ... --worker``) share the SQLite study, Optuna's own way of parallel
optimisation; each gets a GPU of its own (round robin) or a share of the CPU threads.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass

from lmforge.errors import ConfigError
from lmforge.sweep.trial import Setup, check_setup, run_trial

log = logging.getLogger(__name__)


@dataclass
class Options:
    trials: int
    metric: str = "eval_loss"
    direction: str = "minimize"
    jobs: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0


def identity(setup: Setup, opts: Options, raw_space: dict) -> dict:
    return {"space": raw_space, "metric": opts.metric, "direction": opts.direction}


def objective(setup: Setup):
    """Optuna objective: config errors stop the sweep; any other failure fails this trial only
    (NaN marks it failed) and the sweep goes on."""
    import optuna

    def run(trial) -> float:
        try:
            return run_trial(setup, trial)
        except (ConfigError, optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - one broken trial must not end the sweep
            log.error("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            return math.nan

    return run


def optimize(study, setup: Setup, opts: Options) -> None:
    """Run trials in this process until ``opts.trials`` count (completed + pruned)."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from lmforge.sweep.study import counted

    remaining = opts.trials - counted(study)
    if remaining <= 0:
        return
    # running trials count too: with --jobs > 1 a worker does not start one more trial while
    # the others finish the last ones
    stop = MaxTrialsCallback(opts.trials, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                  TrialState.RUNNING))
    study.optimize(objective(setup), n_trials=remaining, callbacks=[stop])


def worker_env(index: int, jobs: int) -> dict:
    import torch

    env = dict(os.environ)
    gpus = torch.cuda.device_count()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    return env


def spawn_workers(argv: list[str], opts: Options, setup: Setup) -> int:
    """``jobs`` worker processes (this command with --worker); the first failure's status."""
    cmd = [sys.executable, "-m", "lmforge", *argv, "--worker"]
    if not any(o.startswith("train.num_threads=") for o in setup.overrides.merged):
        cmd.append(f"train.num_threads={max(1, (os.cpu_count() or 1) // opts.jobs)}")
    procs = [subprocess.Popen(cmd, env=worker_env(i, opts.jobs)) for i in range(opts.jobs)]
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c), 0)


def run_sweep(setup: Setup, opts: Options, raw_space: dict, argv: list[str] | None = None,
              worker: bool = False) -> int:
    """The whole sweep (or, with ``worker``, one worker's share of it)."""
    from lmforge.sweep import report
    from lmforge.sweep.study import driver_lock, open_study, requeue_interrupted

    if opts.trials < 1 or opts.jobs < 1:
        raise ConfigError("--trials and --jobs must be at least 1")
    check_setup(setup)
    ident = identity(setup, opts, raw_space)
    if worker:
        study = open_study(setup.directory, ident, opts.direction, opts.sampler,
                           opts.seed + os.getpid(), setup.dims, opts.pruner)
        optimize(study, setup, opts)
        return 0
    with driver_lock(setup.directory):
        study = open_study(setup.directory, ident, opts.direction, opts.sampler, opts.seed,
                           setup.dims, opts.pruner)
        requeue_interrupted(study)
        if opts.jobs == 1:
            optimize(study, setup, opts)
            status = 0
        else:
            status = spawn_workers(argv or [], opts, setup)
        report.write(study, setup, opts)
    return status
