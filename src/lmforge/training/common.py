"""Pieces every Trainer-based stage shares: seeding, resume, final save, metrics, curves."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError
from lmforge.training.result import RunResult
from lmforge.utils.plots import plot_curves
from lmforge.utils.rundir import write_metrics

log = logging.getLogger(__name__)


def setup_torch(cfg: RunConfig) -> None:
    import os

    import torch

    # TensorBoard events go to <output_dir>/logs (transformers 5 reads this variable)
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(cfg.train.output_dir) / "logs")
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    from lmforge.distributed import engines, ranks

    # launched with several processes: start the process group now, so the data can be
    # tokenized on rank 0 first (ranks.main_first) before the Trainer exists
    ranks.init_process_group(cfg.train.use_cpu, cfg.train.extra.get("ddp_timeout"))
    engines.forget_previous_run()  # runs in one process (sweeps, tests) stay independent

    hf_logging.disable_progress_bar()  # per-shard/per-load tqdm bars; training has a rich bar
    from lmforge.training.device import decide

    threads = decide(cfg).threads  # train.num_threads, else physical cores (training/device.py)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    set_seed(cfg.train.seed)


def resume_checkpoint(cfg: RunConfig) -> str | None:
    """None, the newest COMPLETE checkpoint in output_dir ('auto': its manifest verifies, see
    training/checkpoints.py), or the given path (checked against its manifest)."""
    from lmforge.training import checkpoints

    resume = cfg.train.resume
    if not resume:
        return None
    if resume == "auto":
        out = Path(cfg.train.output_dir)
        last = checkpoints.latest_complete(out)
        if not last:
            log.info("train.resume: auto found no complete checkpoint in %s; starting fresh", out)
        return last
    if not Path(resume).is_dir():
        raise ConfigError(f"train.resume: checkpoint '{resume}' not found")
    checkpoints.check_resume_path(resume)
    return resume


def log_parameters(model) -> dict[str, int]:
    from lmforge.model.loader import count_parameters

    trainable, total = count_parameters(model)
    log.info("parameters: %s trainable of %s (%.2f%%)", f"{trainable:,}", f"{total:,}",
             100 * trainable / max(total, 1))
    return {"trainable_parameters": trainable, "total_parameters": total}


def end_of_turn_ids(tokenizer, template: str | None) -> list[int]:
    """Token ids that end an assistant turn under ``template`` (e.g. <|im_end|>, <|eot_id|>),
    then the tokenizer's EOS: generation stops at whichever comes first."""
    ids: list[int] = []
    if template:
        from lmforge.data.templates import end_of_turn_id

        eot = end_of_turn_id(template, tokenizer)
        ids += [eot] if eot is not None else []
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def save_final(trainer, ctx) -> None:
    """Final model (or adapter) into the run directory + tokenizer with the chat template used +
    generation config whose eos is the template's end-of-turn token (serving then renders and
    stops like training)."""
    tokenizer, template, out = ctx.tokenizer, ctx.template, ctx.out
    model = trainer.model
    config = getattr(model, "config", None)
    if config is not None:
        config.use_cache = True  # off for training (packing); inference wants it
    trainer.save_model(str(out))
    if template:
        tokenizer.chat_template = template
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
    gen = getattr(model, "generation_config", None)
    if gen is not None and trainer.is_world_process_zero():
        eos = end_of_turn_ids(tokenizer, template)
        gen.eos_token_id = eos[0] if len(eos) == 1 else eos
        gen.pad_token_id = tokenizer.pad_token_id
        gen.save_pretrained(str(out))
    if config is not None:
        config.use_cache = False


def finish(ctx, trainer, train_output, extra: dict | None = None) -> RunResult:
    """metrics.json (train_loss, eval_loss, train_runtime, train_tokens_per_second, ...) and
    loss.png with the train and eval curves. ``train_loss`` is the mean over every step of the
    run, resumed ones included, averaged over the global batch (training/saving.py);
    ``resumed_from_step`` marks a run this process resumed. ``total_flos`` is summed over
    processes and counts attended tokens, not padding (training/saving.py)."""
    from lmforge.training.saving import run_train_loss

    out = ctx.out
    # samples/s would count packed blocks as samples: trained tokens/s (below) is the honest rate
    metrics = {k: v for k, v in train_output.metrics.items() if k != "train_samples_per_second"}
    history = trainer.state.log_history
    ledger = getattr(trainer, "run_ledger", None)
    start = ledger.start_step if ledger is not None else 0
    metrics["train_loss"] = run_train_loss(history, start, trainer.state.global_step,
                                           train_output.training_loss)
    if start:
        metrics["resumed_from_step"] = start
    evals = [h["eval_loss"] for h in history if "eval_loss" in h]
    if evals:
        metrics["eval_loss"] = evals[-1]
        metrics["eval_perplexity"] = math.exp(min(evals[-1], 50))
    if hasattr(trainer, "total_trained_tokens"):
        tokens = trainer.total_trained_tokens()
        runtime = metrics.get("train_runtime") or 0.0
        metrics["train_tokens"] = tokens
        metrics["train_tokens_per_second"] = tokens / runtime if runtime > 0 else 0.0
    metrics.update(extra or {})
    metrics["global_step"] = trainer.state.global_step
    metrics["world_size"] = trainer.args.world_size
    if trainer.is_world_process_zero():
        from lmforge import tracking

        write_metrics(out, metrics)
        plot_curves(history, out / "loss.png", title=f"{out.name}: loss")
        tracking.finish(trainer, metrics, out)  # config + final metrics to the trackers
    return RunResult(out, metrics, list(history))
