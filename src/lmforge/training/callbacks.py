"""Trainer callbacks shared by the stages: a rich progress bar and readable log lines.

transformers' tqdm ProgressCallback prints a raw dict per log step and redraws on every step;
RichProgress replaces it with one rich bar (steps, elapsed, remaining, latest loss) and logs each
metrics dict as one short line through ``logging``. Everything happens on rank 0 only.
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

log = logging.getLogger("lmforge.train")

_SKIP = {"total_flos", "epoch", "step"}


def format_logs(logs: dict) -> str:
    parts = []
    for key, value in logs.items():
        if key in _SKIP or key.endswith("_per_second"):
            continue
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


class RichProgress(TrainerCallback):
    """One rich progress bar for training (and a transient one per evaluation)."""

    def __init__(self):
        self.progress = None
        self.task = None
        self.eval_task = None
        self.loss: float | None = None

    def _bar(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        return Progress(TextColumn("[bold blue]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[info]}"), transient=False)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.progress = self._bar()
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps,
                                           completed=state.global_step, info="")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            info = f"loss {self.loss:.4f}" if self.loss is not None else ""
            self.progress.update(self.task, completed=state.global_step, info=info)

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if self.progress is None or eval_dataloader is None:
            return
        if self.eval_task is None:
            total = len(eval_dataloader) if hasattr(eval_dataloader, "__len__") else None
            self.eval_task = self.progress.add_task("eval", total=total, info="")
        self.progress.advance(self.eval_task)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.progress is not None and self.eval_task is not None:
            self.progress.remove_task(self.eval_task)
        self.eval_task = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if "loss" in logs:
            self.loss = float(logs["loss"])
            if self.progress is not None:
                self.progress.update(self.task, info=f"loss {self.loss:.4f}")
        line = format_logs(logs)
        if line:
            log.info("step %d: %s", state.global_step, line)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)
            self.progress.stop()
        self.progress = None


class StopAtStep(TrainerCallback):
    """Stop training after ``step`` optimizer steps (used to interrupt runs, e.g. in tests)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control
