"""The only private transformers API lmforge relies on, in one place (tests/unit/
test_compat_signatures.py fails loudly when the installed transformers changes it).

Everything else extends the Trainer through public hooks: TrainerCallback events (rotation,
logging at checkpoints, the resume bookkeeping: training/saving.py), ``save_model`` (the JSON
training arguments), ``get_batch_samples`` (no step past max_steps on resume),
``get_train_dataloader`` (length-grouped batches: training/grouping.py), ``compute_loss`` (fast
loss, token counting).

Why these two overrides have no public equivalent: an atomic checkpoint must be WRITTEN
somewhere else than ``checkpoint-N`` (a staging directory) and renamed once complete, so that a
crash mid-save never leaves a directory that looks like a checkpoint. The Trainer writes
``checkpoint-N`` inside ``_save_checkpoint`` (weights, optimizer, scheduler, RNG of every rank,
trainer state, trl's own additions) under the directory ``_get_output_dir(trial)`` returns, and
no public hook runs before that write (``on_save`` runs after it). So:

- ``_get_output_dir(trial)`` returns the staging directory while a save is in progress;
- ``_save_checkpoint(model, trial)`` delegates to ``self.staged_save(run_dir, write)``
  (training/saving.py), which creates the staging directory, calls ``write()`` (the Trainer's
  own save, into staging), writes the manifest and renames.

One accelerate module attribute is overridden for the length of a run that does not use
DeepSpeed (``deepspeed_import_skipped``): ``accelerate.utils.other.extract_model_from_parallel``,
which the Trainer calls from its constructor on, imports ``deepspeed`` whenever the package is
installed, only to add ``DeepSpeedEngine`` to an ``isinstance`` check that a run without DeepSpeed
can never match. The import costs ~117 MiB of RSS and ~1.2 s (measured: torch + transformers +
peft + trl + accelerate 449 MiB, + deepspeed 566 MiB), about the whole gap to LLaMA-Factory's
peak RSS on the tiny benchmark scenario, whose venv has no DeepSpeed.
tests/integration/test_deepspeed_import_skipped.py fails when accelerate stops making that import
(then drop the override).

``save_checkpoint(trainer)`` is the public entry point for code outside the Trainer loop that
must save now (e.g. training/faults.py after SIGTERM): a checkpoint followed by the ``on_save``
event, exactly what the loop does.
"""

from __future__ import annotations

import contextlib
import os
import sys

# name -> the parameters (after self) lmforge's overrides accept and pass on
EXPECTED = {"_save_checkpoint": ("model", "trial"), "_get_output_dir": ("trial",)}


class StagedSaveMixin:
    """Trainer mixin: checkpoints are written into a staging directory (module docstring)."""

    _lmforge_staging: str | None = None

    def _get_output_dir(self, trial):
        if self._lmforge_staging is not None:
            return self._lmforge_staging
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial):
        run_dir = super()._get_output_dir(trial)

        def write(staging: str) -> None:
            self._lmforge_staging = staging
            try:
                super(StagedSaveMixin, self)._save_checkpoint(model, trial)
            finally:
                self._lmforge_staging = None

        self.staged_save(run_dir, write)  # defined by training/saving.py's mixin


def save_checkpoint(trainer) -> None:
    """Save a checkpoint of the current step now and fire ``on_save`` (rotation etc.)."""
    trainer._save_checkpoint(trainer.model, trial=None)
    trainer.control = trainer.callback_handler.on_save(trainer.args, trainer.state,
                                                       trainer.control)


def signature_problems() -> list[str]:
    """How the installed transformers' private methods differ from what lmforge expects (empty:
    they match)."""
    import inspect

    from transformers import Trainer

    problems = []
    for name, params in EXPECTED.items():
        method = getattr(Trainer, name, None)
        if method is None:
            problems.append(f"transformers.Trainer.{name} no longer exists")
            continue
        got = tuple(p for p in inspect.signature(method).parameters if p != "self")
        if got != params:
            problems.append(f"transformers.Trainer.{name}{got} is not {name}{params}")
    return problems


@contextlib.contextmanager
def deepspeed_import_skipped(uses_deepspeed: bool):
    """Within it, accelerate does not import ``deepspeed`` to unwrap models (module docstring),
    unless the run uses DeepSpeed (``train.deepspeed``, or accelerate's own launcher switch) or
    the package is imported already (nothing left to save)."""
    launched = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true", "yes")
    if uses_deepspeed or launched or "deepspeed" in sys.modules:
        yield
        return
    import accelerate.utils.other as other

    original = other.is_deepspeed_available
    other.is_deepspeed_available = lambda: False
    try:
        yield
    finally:
        other.is_deepspeed_available = original
