"""The Trainer side of checkpoints, resume and the run's summary numbers (the files themselves:
training/checkpoints.py; the one private hook that stages a save: training/compat.py).

``AtomicCheckpointMixin`` (mixed into every trainer built by training/trainer.py):

- every checkpoint is written into ``.partial-checkpoint-N/checkpoint-N``, fsynced, manifested
  (``lmforge_manifest.json`` written last) and renamed to ``checkpoint-N`` (``staged_save``);
- ``save_model`` (public) turns the pickled ``training_args.bin`` into ``training_args.json``;
- ``get_batch_samples`` (public) returns no batch once ``global_step`` has reached
  ``max_steps``: resuming from the checkpoint of a finished run (``train.resume: auto`` in a job
  script run again) trains nothing more, where transformers would run one step past the end
  (it checks for the end only after a step);
- ``floating_point_ops`` (public) counts the attended tokens, not the padding, so
  ``total_flos`` is the same for one process with batch 4 and two with batch 2;
- transformers' own checkpoint deletion is off (``save_total_limit`` is taken over at
  construction: it deletes by mtime inside the save, and at the end of training with limit 1 and
  a best checkpoint it deletes the newest one before the final model is saved); ``RunLedger``
  rotates after each save (``on_save``), never deleting the newest complete checkpoint nor the
  best one.

``RunLedger`` (a TrainerCallback) also asks for a log entry at every checkpoint and at the last
step, so the log history (restored from the checkpoint on resume) holds the loss of every step of
the run, and remembers the step this process started from. ``run_train_loss`` turns that history
into the mean training loss over the WHOLE run: each logged loss (the mean over the steps since
the previous entry, already averaged over processes by the Trainer) weighted by its steps. That
is exact across world sizes (the per-process losses are normalised by the trained tokens of the
global batch) and across resumes, where ``TrainOutput.training_loss`` covers only the steps of
the last process (and, after the last log entry, only rank 0's own batches).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from transformers import TrainerCallback

from lmforge.training.checkpoints import args_to_json, rotate, seal, staged_save, staging_dir
from lmforge.training.compat import StagedSaveMixin


class RunLedger(TrainerCallback):
    """Logs at every checkpoint and at the end, rotates checkpoints after each save, remembers
    where this process started (module docstring)."""

    def __init__(self, save_total_limit: int | None):
        self.limit = save_total_limit
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or control.should_training_stop \
                or state.global_step >= state.max_steps:
            control.should_log = True  # the loss of the steps up to here goes into the history
        return control

    def on_save(self, args, state, control, **kwargs):
        if args.should_save:
            rotate(args.output_dir, self.limit, [state.best_model_checkpoint])


def run_train_loss(history: list[dict], start_step: int, global_step: int,
                   process_loss: float) -> float:
    """The mean training loss over every step of the run (module docstring). ``process_loss`` is
    this process's ``TrainOutput.training_loss`` (over its steps ``start_step+1..global_step``):
    it supplies the steps after the last log entry, if training ended without one."""
    total = here = 0.0
    steps, last = 0, 0
    for entry in sorted((h for h in history if "loss" in h and "step" in h),
                        key=lambda h: int(h["step"])):
        step = int(entry["step"])
        if step <= last:
            continue
        first = max(last, start_step) if step > start_step else last  # nothing logged between
        n = step - first
        total += float(entry["loss"]) * n
        here += float(entry["loss"]) * n if step > start_step else 0.0
        steps, last = steps + n, step
    tail_steps = global_step - max(last, start_step)
    if tail_steps > 0:
        total += process_loss * (global_step - start_step) - here
        steps += tail_steps
    return total / steps if steps else float(process_loss)


class AtomicCheckpointMixin(StagedSaveMixin):
    """Trainer mixin: staged, manifested checkpoints; JSON arguments; no step past the end;
    rotation and the run's loss through ``RunLedger`` (module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lmforge_save_limit = self.args.save_total_limit
        self.args.save_total_limit = None  # RunLedger rotates (module docstring)
        self.run_ledger = RunLedger(self.lmforge_save_limit)
        self.add_callback(self.run_ledger)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        folder = Path(output_dir or self.args.output_dir)
        if self.args.should_save and folder.is_dir():
            args_to_json(folder, self.args, save_total_limit=self.lmforge_save_limit)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        if 0 < self.state.max_steps <= self.state.global_step:  # resumed at the end
            self.control.should_training_stop = True
            return [], None
        return super().get_batch_samples(epoch_iterator, num_batches, device)

    def floating_point_ops(self, inputs) -> float:
        """The Trainer's estimate (6 x parameters x tokens), over the attended tokens rather
        than the padded batch: padding depends on how a global batch is split over processes,
        and ``total_flos`` (summed over processes) must not change with the world size."""
        flos = super().floating_point_ops(inputs)
        mask = inputs.get("attention_mask") if hasattr(inputs, "get") else None
        ids = inputs.get("input_ids") if hasattr(inputs, "get") else None
        if not flos or mask is None or ids is None or tuple(mask.shape) != tuple(ids.shape) \
                or mask.numel() == 0:
            return flos
        return flos * float(mask.sum()) / mask.numel()

    def _barrier(self) -> None:
        if self.args.world_size > 1:
            self.accelerator.wait_for_everyone()

    def staged_save(self, run_dir: str, write) -> None:
        """``write(staging)`` (the Trainer's own save) into ``.partial-checkpoint-N``, then the
        manifest and the rename, on the process that saves; every rank waits for each phase."""
        from lmforge.training.resource_faults import saving_errors

        run_dir = Path(run_dir)
        name = f"checkpoint-{self.state.global_step}"
        staging = staging_dir(run_dir, name)
        with saving_errors(run_dir / name, staging, self):
            staged_save(run_dir, name, self.args.should_save, self._barrier,
                        lambda st: write(str(st)),  # everything into staging/<name>
                        lambda st: self._finish_checkpoint(st / name, run_dir / name, str(st)))

    def _finish_checkpoint(self, tmp: Path, final: Path, staging: str) -> None:
        state = self.state
        best = state.best_model_checkpoint
        if best and best.startswith(staging):  # the Trainer recorded the staging path
            state.best_model_checkpoint = str(final.parent / Path(best).name)
        if state.best_global_step:
            best_dir = final.parent / f"checkpoint-{state.best_global_step}"
            if best_dir == final or best_dir.is_dir():
                state.best_model_checkpoint = str(best_dir)
        state.save_to_json(str(tmp / "trainer_state.json"))
        seal(tmp, final, state.global_step)
        shutil.rmtree(staging, ignore_errors=True)
