"""One trial: the sweep's config with the trial's values, run in-process by ``stages.run`` in
``<dir>/trial_<n>`` (``train.resume: auto``, so a trial a crash interrupted continues from its
last checkpoint), with a callback that reports eval metrics to Optuna and stops a pruned run."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Setup:
    """What every trial shares: the config sources, the space, the objective."""

    config: str | None
    data: str | None
    model: str | None
    overrides: Any  # lmforge.commands._runargs.Overrides
    dims: list
    directory: Path
    metric: str = "eval_loss"
    extra_overrides: list[str] = field(default_factory=list)


def trial_config(setup: Setup, values: dict[str, Any], out: Path | None):
    """The RunConfig of a trial: base config + overrides + the trial's values (+ its dir)."""
    from lmforge.config.loader import compose, set_path, validate

    ov = setup.overrides
    tree = compose(setup.config, setup.data, setup.model, list(ov.merged) + setup.extra_overrides,
                   ov.data, ov.model)
    for path, value in values.items():
        set_path(tree, path.split("."), value, origin="the search space")
    if out is not None:
        set_path(tree, ["train", "output_dir"], str(out), origin="the sweep")
        set_path(tree, ["train", "resume"], "auto", origin="the sweep")
    return validate(tree)


def check_setup(setup: Setup) -> None:
    """Fail before the first trial: every space path must be a valid config key, and an eval_*
    metric needs eval data."""
    cfg = trial_config(setup, {d.path: d.example() for d in setup.dims}, None)
    if setup.metric.startswith("eval_") and cfg.data.eval is None:
        raise ConfigError(f"--metric {setup.metric}: the config has no eval data (data.eval)",
                          hint="set data.eval (a file or a fraction such as 0.1)")
    if setup.metric.startswith("eval_") and cfg.stage in ("ppo", "grpo"):
        log.warning("stage %s reports no eval_loss; pick a metric of its metrics.json",
                    cfg.stage)


class PruningCallback(TrainerCallback):
    """Reports ``metric`` at every evaluation; stops training when Optuna prunes the trial."""

    def __init__(self, trial, metric: str):
        self.trial, self.metric, self.pruned = trial, metric, False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        value = (metrics or {}).get(self.metric)
        if value is None or not state.is_world_process_zero:
            return control
        self.trial.report(float(value), state.global_step)
        if self.trial.should_prune():
            log.info("trial %d pruned at step %d (%s=%.4g)", self.trial.number,
                     state.global_step, self.metric, value)
            self.pruned = True
            control.should_training_stop = True
        return control


def run_trial(setup: Setup, trial) -> float:
    """The objective: train, then the final ``metric`` from the run's metrics."""
    import optuna

    from lmforge import stages
    from lmforge.sweep.space import suggest

    values = suggest(trial, setup.dims)
    out = setup.directory / f"trial_{trial.number}"
    source = trial.user_attrs.get("resumed_from")
    if source is not None:  # an interrupted trial queued again: continue in its directory
        adopt(setup.directory / f"trial_{source}", out)
    trial.set_user_attr("output_dir", str(out))
    cfg = trial_config(setup, values, out)
    log.info("trial %d: %s -> %s", trial.number,
             " ".join(f"{k}={v}" for k, v in values.items()), out)
    callback = PruningCallback(trial, setup.metric)
    try:
        result = stages.run(cfg, callbacks=[callback])
    finally:
        release_memory()
    for key in ("train_loss", "global_step"):
        if isinstance(result.metrics.get(key), (int, float)):
            trial.set_user_attr(key, float(result.metrics[key]))
    if callback.pruned:
        raise optuna.TrialPruned()
    value = result.metrics.get(setup.metric)
    if not isinstance(value, (int, float)):
        raise ConfigError(f"--metric {setup.metric}: not in the run's metrics (has: "
                          f"{', '.join(sorted(result.metrics))})")
    return float(value)


def adopt(source: Path, out: Path) -> None:
    if source.is_dir() and not out.exists():
        source.rename(out)
        log.info("continuing %s as %s", source.name, out.name)


def release_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
