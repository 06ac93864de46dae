"""Evaluation during training: generation metrics at every evaluation, best checkpoint, early stop.

A stage calls ``callbacks(cfg, tokenizer, template, eval_examples)`` and passes the result to its
Trainer, then ``finalize(trainer, cfg, out_dir)`` after training and before the final save.

- ``GenerationMetrics`` runs when the Trainer logs an evaluation (``on_log`` with ``eval_loss``):
  it generates answers for the eval conversations with the live model (same ChatEngine and
  template as ``lmforge eval``), computes ``eval.metrics`` and adds them to that log entry as
  ``eval_<name>``. The entry is the Trainer's returned metrics dict itself, so everything after it
  sees them: the log history (metrics.json, loss.png, trainer_state.json), the console line, and
  the checkpoint choice, and the reporters (TensorBoard, ...) because the stage runs these
  callbacks before them (``training.trainer.before_reporters``).
- ``BestCheckpoint`` (``on_evaluate``) tracks ``eval.best_metric``: on improvement it records it in
  ``state.best_metric``/``best_global_step`` and asks for a checkpoint at that step (so the best
  model is always on disk; the Trainer's checkpoint rotation then protects it), and it stops
  training after ``eval.early_stopping_patience`` evaluations without improvement. transformers'
  own EarlyStoppingCallback / load_best_model_at_end need ``metric_for_best_model`` to exist in the
  Trainer's evaluation output before callbacks run, which generation metrics cannot; hence ours.
- ``finalize`` loads the best checkpoint's weights into the trainer's model (the stage's final save
  then writes them to output_dir) and returns a summary for metrics.json.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from transformers import TrainerCallback

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)


class GenerationMetrics(TrainerCallback):
    def __init__(self, cfg, tokenizer, template: str, samples):
        self.cfg, self.tokenizer, self.template, self.samples = cfg, tokenizer, template, samples
        self.names = cfg.eval.generation_metrics
        self.perplexity = wants_perplexity(cfg.eval)
        self.batch_size = cfg.eval.batch_size or cfg.train.per_device_eval_batch

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not logs or "eval_loss" not in logs:
            return
        added = {}
        if self.perplexity:
            added["eval_perplexity"] = math.exp(min(float(logs["eval_loss"]), 700.0))
        if self.names and model is not None:
            metrics, records = self._generate(model)
            added.update({f"eval_{k}": v for k, v in metrics.items()})
            if state.is_world_process_zero and self.cfg.eval.save_predictions:
                self._write(records, state.global_step)
        logs.update(added)
        if state.log_history and state.log_history[-1].get("eval_loss") == logs["eval_loss"]:
            state.log_history[-1].update(added)

    def _generate(self, model):
        from lmforge.eval.runner import evaluate
        from lmforge.infer.engine import ChatEngine

        from lmforge.training.device import decide

        # a bf16 run on a CPU with native bf16 generates under the same autocast it trains with
        precision = "bf16" if decide(self.cfg).precision == "bf16" else "fp32"
        engine = ChatEngine(model, self.tokenizer, self.template, batch_size=self.batch_size,
                            precision=precision)
        log.info("generating answers to %d eval examples for %s", len(self.samples),
                 ", ".join(self.names))
        return evaluate(engine, self.samples, self.cfg.eval, self.names)

    def _write(self, records: list[dict], step: int) -> None:
        out = Path(self.cfg.train.output_dir) / "predictions"
        out.mkdir(parents=True, exist_ok=True)
        with (out / f"step-{step}.jsonl").open("w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


class BestCheckpoint(TrainerCallback):
    def __init__(self, key: str, higher: bool, patience: int | None):
        self.key, self.higher, self.patience = key, higher, patience
        self.best: float | None = None
        self.waited = 0
        self.stopped_at: int | None = None
        self.training = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.training = True
        self.best = state.best_metric  # restored from trainer_state.json on resume
        self.waited = sum(1 for h in state.log_history if self.key in h
                          and h.get("step", 0) > (state.best_global_step or 0))

    def on_train_end(self, args, state, control, **kwargs):
        self.training = False

    def _improved(self, value: float) -> bool:
        if self.best is None or math.isnan(self.best):
            return not math.isnan(value)
        return value > self.best if self.higher else value < self.best

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not self.training or metrics is None:
            return
        if self.key not in metrics:
            raise ConfigError(f"eval.best_metric: '{self.key}' is not among the evaluation "
                              f"metrics ({', '.join(sorted(metrics))})")
        value = float(metrics[self.key])
        if self._improved(value):
            self.best, self.waited = value, 0
            state.best_metric, state.best_global_step = value, state.global_step
            control.should_save = True  # the best model must exist as a checkpoint
            return
        self.waited += 1
        log.info("%s=%.4g did not improve on %.4g (%d evaluation(s) without improvement)",
                 self.key, value, self.best, self.waited)
        if self.patience and self.waited >= self.patience:
            log.info("early stopping at step %d: %s has not improved for %d evaluations",
                     state.global_step, self.key, self.waited)
            self.stopped_at = state.global_step
            control.should_training_stop = True


def wants_perplexity(e) -> bool:
    return any(m.removeprefix("eval_") == "perplexity" for m in list(e.metrics) +
               [e.best_metric or ""])


def callbacks(cfg, tokenizer, template: str, eval_examples) -> list:
    """The callbacks that ``cfg.eval`` asks for (empty when it asks for none)."""
    from lmforge.eval.runner import samples_from

    e = cfg.eval
    wants_gen = bool(e.generation_metrics) or e.during_training or wants_perplexity(e)
    wants_best = bool(e.best_metric or e.early_stopping_patience)
    if not (wants_gen or wants_best):
        return []
    if not eval_examples:
        raise ConfigError("eval.during_training / eval.best_metric / early stopping need eval "
                          "data: set data.eval (a file, or a fraction of data.train)")
    out: list = []
    if wants_gen:
        if e.during_training and not (e.metrics or e.best_metric):
            log.warning("eval.during_training is set but eval.metrics is empty: nothing to "
                        "compute beyond eval_loss")
        out.append(GenerationMetrics(cfg, tokenizer, template,
                                     samples_from(eval_examples, e.max_samples)))
    if wants_best:
        out.append(BestCheckpoint(e.best_key or "eval_loss", e.higher_is_better,
                                  e.early_stopping_patience))
    return out


def _callback(trainer, cls):
    return next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, cls)), None)


def finalize(trainer, cfg, out_dir) -> dict:
    """Load the best checkpoint's weights into ``trainer.model``; summary for metrics.json."""
    cb = _callback(trainer, BestCheckpoint)
    if cb is None:
        return {}
    state = trainer.state
    summary = {"best_metric_name": cb.key, "best_metric": state.best_metric,
               "best_step": state.best_global_step, "early_stopped": cb.stopped_at is not None}
    best = state.best_model_checkpoint
    if state.best_global_step and state.best_global_step != state.global_step:
        if best and Path(best).is_dir():
            log.info("loading the best checkpoint %s (%s=%.4g) into %s", best, cb.key,
                     state.best_metric, out_dir)
            # transformers' own loader handles full models, PEFT adapters, DeepSpeed and FSDP
            trainer._load_best_model()
            summary["best_checkpoint"] = str(best)
        else:
            log.warning("the best checkpoint (step %s) is gone; output_dir keeps the last model",
                        state.best_global_step)
    return summary
