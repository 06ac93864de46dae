"""Pieces every Trainer-based stage shares: seeding, resume, final save, metrics, curves."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError
from lmforge.stages.result import RunResult
from lmforge.utils.plots import plot_curves
from lmforge.utils.rundir import write_metrics

log = logging.getLogger(__name__)


def setup_torch(cfg: RunConfig) -> None:
    import os

    import torch

    # TensorBoard events go to <output_dir>/logs (transformers 5 reads this variable)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(cfg.train.output_dir) / "logs")
    from transformers import set_seed

    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    set_seed(cfg.train.seed)


def resume_checkpoint(cfg: RunConfig) -> str | None:
    """None, the newest checkpoint in output_dir ('auto'), or the given path."""
    resume = cfg.train.resume
    if not resume:
        return None
    if resume == "auto":
        from transformers.trainer_utils import get_last_checkpoint

        out = Path(cfg.train.output_dir)
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last:
            log.info("resuming from %s", last)
        return last
    if not Path(resume).is_dir():
        raise ConfigError(f"train.resume: checkpoint '{resume}' not found")
    return resume


def log_parameters(model) -> dict[str, int]:
    from lmforge.model.loader import count_parameters

    trainable, total = count_parameters(model)
    log.info("parameters: %s trainable of %s (%.2f%%)", f"{trainable:,}", f"{total:,}",
             100 * trainable / max(total, 1))
    return {"trainable_parameters": trainable, "total_parameters": total}


def save_final(trainer, tokenizer, template: str, out: Path) -> None:
    """Final model (or adapter) + tokenizer with the chat template used + generation config."""
    trainer.save_model(str(out))
    tokenizer.chat_template = template
    tokenizer.save_pretrained(str(out))
    model = trainer.model
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        gen.eos_token_id = tokenizer.eos_token_id
        gen.pad_token_id = tokenizer.pad_token_id
        gen.save_pretrained(str(out))


def finish(trainer, train_output, out: Path, extra: dict | None = None) -> RunResult:
    metrics = dict(train_output.metrics)
    metrics["train_loss"] = train_output.training_loss
    history = trainer.state.log_history
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    if evals:
        metrics["eval_loss"] = evals[-1]
        metrics["eval_perplexity"] = math.exp(min(evals[-1], 50))
    metrics.update(extra or {})
    metrics["global_step"] = trainer.state.global_step
    if trainer.is_world_process_zero():
        write_metrics(out, metrics)
        plot_curves(history, out / "loss.png", title=f"{out.name}: loss")
    return RunResult(out, metrics)
