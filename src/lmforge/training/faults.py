"""Faults during training, turned into clear outcomes instead of lost runs or raw tracebacks.

- Numerical: ``NumericGuard`` checks every micro-batch loss and, before each optimizer step, the
  gradients. A non-finite one skips the update (gradients dropped, optimizer and LR scheduler
  not stepped; counted as ``train_skipped_steps``); after ``train.max_bad_steps`` in a row (or at
  the first with ``train.nan_policy: stop``) training stops with a TrainingError naming the step
  and the batch's rows (``file:line`` when the dataset carries a ``where`` column). Loss spikes
  (``train.loss_spike_factor`` x the median of the recent losses) are logged with the same batch
  description.
  With fp16's gradient scaler, overflowing gradients are the scaler's business (it skips those
  steps itself); only the loss is checked then. Under DeepSpeed the engine steps by itself, so a
  bad step is counted and can stop the run but is not skipped here.
- Signals: ``stop_on_signals`` turns SIGINT/SIGTERM during ``trainer.train`` into "save a
  checkpoint at the end of this step and stop", then raises TrainingInterrupted (exit code
  128 + signal) telling how to resume. A second signal interrupts at once (the checkpoint being
  written is atomic, see checkpoints.py).
- Resources (out-of-memory, a full disk): see resource_faults.py.

``install(trainer, cfg)`` adds both callbacks to a Trainer built by ``training.trainer``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import signal
import statistics
import threading
from pathlib import Path

from transformers import TrainerCallback

from lmforge.errors import TrainingError

log = logging.getLogger(__name__)

SPIKE_WARMUP = 8  # micro-batch losses seen before spikes are judged
# a spike must also rise this far (nats per token) above the median: near-zero losses (a
# classifier that learned its labels) jump 5x on one wrong answer, which is not a fault
SPIKE_MIN_RISE = 1.0


class TrainingInterrupted(TrainingError):
    """Stopped by a signal after saving a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message, "resume with train.resume: auto (the newest complete "
                         "checkpoint in output_dir)")
        self.exit_code = 128 + signum


# ---------------------------------------------------------------- numerical faults


class FaultMixin:
    """Trainer mixin: hands every micro-batch's inputs and loss to the NumericGuard."""

    _lmforge_guard = None

    def training_step(self, model, inputs, num_items_in_batch=None):
        ids = inputs.get("input_ids") if hasattr(inputs, "get") else None
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self._lmforge_guard is not None:
            self._lmforge_guard.micro_batch(ids, loss, self.state.global_step)
        return loss


def _finite_grads(model) -> bool:
    import torch

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return True
    norms = torch._foreach_norm(grads) if hasattr(torch, "_foreach_norm") else \
        [g.float().norm() for g in grads]
    return bool(torch.isfinite(torch.stack([n.float() for n in norms]).sum()))


class NumericGuard(TrainerCallback):
    def __init__(self, trainer, policy: str, max_bad: int, spike_factor: float | None):
        from lmforge.training.batch_info import BatchLocator

        self.trainer, self.policy, self.max_bad = trainer, policy, max_bad
        self.spike_factor = spike_factor
        self.locator = BatchLocator(trainer)
        self.window: list = []  # input_ids of the micro-batches of the current optimizer step
        self.bad_loss: list[int] = []  # which micro-batches had a non-finite loss
        self.consecutive = self.skipped = self.spikes = 0
        self.recent: collections.deque = collections.deque(maxlen=32)

    # called by FaultMixin.training_step
    def micro_batch(self, input_ids, loss, step: int) -> None:
        self.window.append(input_ids)
        value = float(loss.detach().float()) if hasattr(loss, "detach") else float(loss)
        if not math.isfinite(value):
            self.bad_loss.append(len(self.window) - 1)
            return
        self._spike(value, step)

    def _spike(self, value: float, step: int) -> None:
        """A loss above spike_factor x the median of the recent losses (robust to the spikes
        themselves; only once SPIKE_WARMUP losses were seen, and at least SPIKE_MIN_RISE above)."""
        recent = self.recent
        if self.spike_factor and len(recent) >= SPIKE_WARMUP:
            ref = statistics.median(recent)
            if ref > 0 and value > self.spike_factor * ref and value - ref >= SPIKE_MIN_RISE:
                self.spikes += 1
                log.warning("loss spike at step %d: %.4g, %.1fx the recent median %.4g; "
                            "batch: %s", step + 1, value, value / ref, ref,
                            self.locator.describe(self.window[-1:]))
        recent.append(value)

    def _agree(self, bad: bool) -> bool:
        """Every process takes the same decision (a NaN on one rank skips the step on all)."""
        t = self.trainer
        if t.args.world_size <= 1:
            return bad
        import torch

        flag = torch.tensor(float(bad), device=t.args.device)
        return bool(t.accelerator.reduce(flag, reduction="sum").item() > 0)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        scaler = getattr(self.trainer.accelerator, "scaler", None)
        model = model or self.trainer.model
        bad_grads = scaler is None and not _finite_grads(model)
        if not self._agree(bool(self.bad_loss) or bad_grads):
            self.consecutive = 0
            return
        self.skipped += 1
        self.consecutive += 1
        what = "loss" if self.bad_loss else "gradient"
        rows = [self.window[i] for i in self.bad_loss] or self.window
        fatal = self.policy == "stop" or self.consecutive >= self.max_bad
        batch = self.locator.describe(rows, thorough=fatal)
        where = f"step {state.global_step + 1}"
        if fatal:
            n = f"{self.consecutive} steps in a row" if self.consecutive > 1 else "a step"
            raise TrainingError(
                f"non-finite {what} (NaN/Inf) for {n}, the last at {where}; batch: {batch}",
                "look at those rows (huge or empty fields?), lower train.learning_rate, keep "
                "train.max_grad_norm on, or use bf16 instead of fp16; the last checkpoint is "
                "intact (train.resume: auto)")
        log.warning("non-finite %s at %s: update skipped (%d in a row, %d in total); batch: %s",
                    what, where, self.consecutive, self.skipped, batch)
        if scaler is None and not self.trainer.is_deepspeed_enabled:
            model.zero_grad(set_to_none=True)  # torch optimizers skip parameters without grad
            opt = self.trainer.optimizer
            if hasattr(opt, "_is_overflow"):  # accelerate: the LR scheduler then does not step
                opt._is_overflow = True

    def on_step_end(self, args, state, control, **kwargs):
        opt = self.trainer.optimizer
        if getattr(opt, "_is_overflow", False) and getattr(self.trainer.accelerator,
                                                           "scaler", None) is None:
            opt._is_overflow = False
        self.window, self.bad_loss = [], []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None:
            return
        if "train_runtime" in logs:  # the final summary: it becomes train()'s metrics
            added = {"train_skipped_steps": self.skipped, "train_loss_spikes": self.spikes}
        elif "loss" in logs and (self.skipped or self.spikes):
            added = {"skipped_steps": self.skipped, "loss_spikes": self.spikes}
        else:
            return
        logs.update(added)
        if state.log_history and set(logs) - set(added) <= set(state.log_history[-1]):
            state.log_history[-1].update(added)


# ---------------------------------------------------------------- signals


class SignalStop(TrainerCallback):
    """Set by the signal handler; at the end of the current step: save and stop (on every
    process of a multi-process run, as soon as any of them got the signal)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.signum: int | None = None
        self.stopped_at: int | None = None

    def _requested(self, args) -> bool:
        if args.world_size <= 1:
            return self.signum is not None
        import torch

        flag = torch.tensor(float(self.signum is not None), device=args.device)
        return bool(self.trainer.accelerator.reduce(flag, reduction="sum").item() > 0)

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and self._requested(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control


@contextlib.contextmanager
def stop_on_signals(trainer):
    """SIGINT/SIGTERM during ``trainer.train``: checkpoint at the end of the step, then raise
    TrainingInterrupted. Handlers are only installed in the main thread, and always restored."""
    stop = next((c for c in trainer.callback_handler.callbacks if isinstance(c, SignalStop)),
                None)
    if stop is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        if stop.signum is not None:  # the second one: stop now
            signal.signal(signum, previous.get(signum) or signal.SIG_DFL)
            raise KeyboardInterrupt
        stop.signum = signum
        log.warning("received %s: saving a checkpoint at the end of this step, then stopping "
                    "(send it again to stop at once)", signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if stop.signum is not None or stop.stopped_at is not None:
        _finish_interrupted(trainer, stop)


def _finish_interrupted(trainer, stop: SignalStop) -> None:
    from lmforge.training.checkpoints import verify

    step = trainer.state.global_step
    last = Path(trainer.args.output_dir) / f"checkpoint-{step}"
    if verify(last, deep=False) is not None:  # the loop had ended before it saw the signal
        from lmforge.training.compat import save_checkpoint

        save_checkpoint(trainer)  # and on_save: rotation as after any other save
    signum = stop.signum or signal.SIGTERM  # another process got it
    name = signal.Signals(signum).name
    raise TrainingInterrupted(f"interrupted by {name} at step {step}; checkpoint saved: {last}",
                              signum)


# ---------------------------------------------------------------- wiring


def install(trainer, cfg) -> None:
    """Add the guard and the signal callback to a Trainer built by training.trainer, right after
    DefaultFlowCallback (so values they add to a log entry reach the reporters)."""
    from transformers.trainer_callback import DefaultFlowCallback

    guard = NumericGuard(trainer, cfg.train.nan_policy, cfg.train.max_bad_steps,
                         cfg.train.loss_spike_factor)
    trainer._lmforge_guard = guard
    handler = trainer.callback_handler
    at = next((i + 1 for i, c in enumerate(handler.callbacks)
               if isinstance(c, DefaultFlowCallback)), 0)
    handler.callbacks[at:at] = [guard, SignalStop(trainer)]
