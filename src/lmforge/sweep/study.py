"""The sweep's Optuna study: SQLite in the sweep directory (``study.db``), created or loaded, so a
sweep that crashed or was stopped resumes where it was. One driver per directory (a lock file)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
from pathlib import Path

from lmforge.errors import ConfigError, require

log = logging.getLogger(__name__)

STUDY = "lmforge-sweep"
DB = "study.db"


def storage_url(directory: Path) -> str:
    return f"sqlite:///{(directory / DB).resolve()}"


def storage(directory: Path):
    optuna = require("optuna", "sweep", "lmforge sweep")
    # workers share the file: wait for SQLite's lock instead of failing at once
    return optuna.storages.RDBStorage(storage_url(directory),
                                      engine_kwargs={"connect_args": {"timeout": 120}})


@contextlib.contextmanager
def driver_lock(directory: Path):
    """Only one sweep driver per directory: a second one is an error, not a silent race."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "sweep.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another lmforge sweep is running in {directory}",
                              hint="wait for it, or pass another --dir") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_sampler(name: str, seed: int, dims):
    import optuna

    from lmforge.sweep.space import grid

    if name == "grid":
        return _grid_sampler()(grid(dims), seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _grid_sampler():
    import optuna

    class Grid(optuna.samplers.GridSampler):
        """optuna's GridSampler.after_trial reads every trial's grid id, but a queued trial (an
        interrupted one run again, see requeue_interrupted) has none: it reuses the grid point
        of the failed trial, which already counts as visited."""

        def after_trial(self, study, trial, state, values):
            if "grid_id" in trial.system_attrs:
                return super().after_trial(study, trial, state, values)
            if not self._get_unvisited_grid_ids(study):
                study.stop()

    return Grid


def make_pruner(name: str):
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    # a trial stops when its eval metric is worse than the median of earlier trials at that step
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def open_study(directory: Path, identity: dict, direction: str, sampler: str, seed: int, dims,
               pruner: str = "median"):
    """Create or load the study; a directory holding a different sweep is refused."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY, storage=storage(directory),
                                load_if_exists=True, direction=direction,
                                sampler=make_sampler(sampler, seed, dims),
                                pruner=make_pruner(pruner))
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", identity)
    elif json.dumps(stored, sort_keys=True) != json.dumps(identity, sort_keys=True):
        changed = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
        raise ConfigError(f"{directory} holds another sweep (different {', '.join(changed)})",
                          hint="pass another --dir, or the same space, metric and direction")
    return study


def counted(study) -> int:
    """Trials that count towards --trials: completed and pruned ones."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def requeue_interrupted(study) -> int:
    """Trials left RUNNING by a killed sweep (we hold the driver lock, so nobody runs them):
    marked failed and queued again with the same values; the new trial moves the old trial's
    directory to its own and continues from its last checkpoint (train.resume: auto)."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        log.info("trial %d was interrupted: running it again from its last checkpoint", t.number)
        try:
            study.tell(t.number, state=TrialState.FAIL)
        except RuntimeError:
            pass  # GridSampler calls study.stop() outside optimize(); the state is already set
        study.enqueue_trial(t.params, user_attrs={"resumed_from": t.number}, skip_if_exists=False)
    return len(stale)
