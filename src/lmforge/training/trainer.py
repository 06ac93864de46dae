"""Trainer plumbing every stage shares: model preparation, collator choice (padded or packed),
a Trainer with lmforge's callbacks and honest trained-token counting, training with resume.

A stage does: ``ctx = context.start(cfg, callbacks)``; ``model = prepare_model(cfg,
ctx.tokenizer, ctx.facts)``; ``train, eval, collator = prepare_data(cfg, data, tokenizer, model,
ctx.facts)``;
``trainer = build_trainer(ctx, model, args, train, eval, collator=collator)``;
``output = train(trainer, cfg)``; then ``common.save_final`` and ``common.finish``.
Any Trainer subclass (trl's included) works: ``build_trainer(..., cls=DPOTrainer)``. Callbacks
from outside (plugins, sweeps, tests that interrupt a run) come in through
``stages.run(cfg, callbacks=...)``, which puts them in the run context.

Checkpoints are atomic and manifested, ``training_args.bin`` (a pickle) becomes JSON
(``checkpoints.py``); NaN/Inf steps are skipped and counted, signals save and stop
(``faults.py``).
"""

from __future__ import annotations

import functools
import logging

from lmforge.config.constants import IGNORE_INDEX as IGNORE
from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError
from lmforge.model.loader import attention_kind

log = logging.getLogger(__name__)


def count_trained_tokens(inputs: dict) -> int:
    """Tokens that contribute to the loss in one prepared batch: the completion tokens where the
    batch marks them (trl's DPO/KTO/GRPO; GRPO's tool results excluded), else the labels a causal
    LM predicts (labels[1:]), else the attended tokens."""
    if not hasattr(inputs, "get"):
        return 0
    completion = inputs.get("completion_mask")
    if completion is not None and hasattr(completion, "sum"):
        tool = inputs.get("tool_mask")
        return int((completion * tool).sum() if tool is not None else completion.sum())
    labels = inputs.get("labels")
    if labels is not None and hasattr(labels, "ndim") and labels.ndim == 2:
        return int((labels[:, 1:] != IGNORE).sum())
    mask = inputs.get("attention_mask")
    if mask is not None:
        return int(mask.sum())
    ids = inputs.get("input_ids")
    return int(ids.numel()) if ids is not None else 0


class TokenCountingMixin:
    """Counts the trained tokens of every batch whose loss a training step computes (batches
    skipped on resume are not counted), for an honest ``train_tokens_per_second``. Counted in
    ``compute_loss``, which gets the batch as the loss sees it: GRPO's training_step only gets
    prompts, its completions are generated on the way to the loss."""

    trained_tokens: int = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self.trained_tokens += count_trained_tokens(inputs)
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)

    def total_trained_tokens(self) -> int:
        """Summed over processes in distributed runs."""
        if self.args.world_size <= 1:
            return self.trained_tokens
        import torch

        count = torch.tensor(self.trained_tokens, device=self.args.device)
        return int(self.accelerator.reduce(count, reduction="sum").item())


@functools.cache
def trainer_class(base=None):
    """``base`` (transformers' Trainer by default) with trained-token counting, atomic
    checkpoints and the numerical-fault guard mixed in."""
    if base is None:
        from transformers import Trainer as base
    from lmforge.training.saving import AtomicCheckpointMixin
    from lmforge.training.fastloss import FastLossMixin
    from lmforge.training.faults import FaultMixin
    from lmforge.training.grouping import LengthGroupedMixin

    mixins = (FaultMixin, AtomicCheckpointMixin, TokenCountingMixin, FastLossMixin,
              LengthGroupedMixin)
    return type(f"Lmforge{base.__name__}", (*mixins, base), {})


def prepare_model(cfg: RunConfig, tokenizer, facts=None):
    """Load the base model and attach the adapter; the KV cache is off while training (with it
    on, transformers ignores packed position ids and packed examples attend to each other).
    ``facts``: the run's device facts (``ctx.facts``); decided here when called outside a run."""
    from lmforge.model.adapters import attach
    from lmforge.model.loader import load_model
    from lmforge.model.portable import base_name, name_base
    from lmforge.training.device import decide

    facts = facts if facts is not None else decide(cfg)
    if facts.cpu_kernels:
        from lmforge.model.cpu_kernels import register

        register()  # before loading: the model's switch to training mode picks the layers up
    model = attach(load_model(cfg.model, tokenizer, adapter=cfg.adapter, facts=facts),
                   cfg.adapter)
    if facts.cpu_attention == "rows":
        from lmforge.model.row_attention import use_row_attention

        use_row_attention(model)  # where the model's attention is plain causal SDPA
    elif facts.cpu_attention == "float32":
        from lmforge.model.float32_attention import use_float32_attention

        use_float32_attention(model)
    if cfg.adapter.uses_fused:
        from lmforge.model.fused_mlp import fuse_mlps

        fuse_mlps(model)  # before the frozen cast: its probe compares in the loaded dtype
    if facts.frozen_bf16:
        from lmforge.training.frozen_cast import cast_frozen_linears

        cast_frozen_linears(model)
    name_base(model, base_name(cfg.model, cfg.train.output_dir))  # portable adapter_config.json
    if getattr(model, "config", None) is not None:
        model.config.use_cache = False
    return model


def prepare_data(cfg: RunConfig, data, tokenizer, model, facts):
    """(train, eval, collator) from the pipeline's BuiltData: packed blocks when data.packing
    (their statistics added to ``data.stats["packing"]``), otherwise padded batches (to
    ``facts.pad_multiple``; ``facts``: the run's ``ctx.facts``)."""
    from lmforge.data.collate import PackedCollator, PadCollator

    if not cfg.data.packing:
        return data.train, data.eval, PadCollator(tokenizer.pad_token_id, facts.pad_multiple)
    from lmforge.data.packing import pack_dataset

    train, stats = pack_dataset(data.train, cfg.data.max_length, "train")
    data.stats["packing"] = {"blocks": stats.blocks, "fill": stats.fill, "split": stats.split}
    evals = (pack_dataset(data.eval, cfg.data.max_length, "eval")[0]
             if data.eval is not None else None)
    flash = "flash" in attention_kind(model) if model is not None else False
    return train, evals, PackedCollator(tokenizer.pad_token_id, flash_varlen=flash)


def check_packing_safe(cfg: RunConfig, trainer, facts) -> None:
    """Refuse a packed run whose model would let packed examples see each other: a KV cache
    requested, or (checked with a tiny probe) a model that ignores packed position ids. The probe
    runs under the run's autocast (``facts``: ``ctx.facts``)."""
    if not cfg.data.packing:
        return
    if getattr(trainer.args, "use_cache", False):
        raise ConfigError("train.extra.use_cache: true cannot be combined with data.packing: with "
                          "a KV cache transformers ignores packed position ids and packed "
                          "examples attend to each other")
    config = getattr(trainer.model, "config", None)
    if config is not None:
        config.use_cache = False
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        return  # sharded parameters: the model cannot run outside its engine here
    from lmforge.data.packing import isolation_error
    from lmforge.training.device import cpu_autocast

    # bfloat16-stored frozen weights (device.py frozen_bf16) compute only under autocast
    context = cpu_autocast("bf16" if facts.frozen_bf16 else "fp32")
    try:
        with context:
            error = isolation_error(trainer.model)
    except Exception as exc:  # e.g. prompt-learning adapters that reject position ids
        raise ConfigError(f"data.packing: cannot run this model on packed rows ({exc})",
                          hint="set data.packing: false") from exc
    if error > 0.1:
        raise ConfigError(f"data.packing: this model ({type(trainer.model).__name__}, attention "
                          f"'{attention_kind(trainer.model)}') ignores packed position ids, so "
                          "packed examples would attend to each other", hint="set data.packing: "
                          "false, or model.attn_implementation: sdpa / eager / flash_attention_2")


def replace_progress(trainer) -> None:
    """Swap the tqdm progress callback for the rich one (rank-0 output only)."""
    from transformers.trainer_callback import ProgressCallback

    from lmforge.training.callbacks import RichProgress

    trainer.remove_callback(ProgressCallback)
    try:
        from transformers.utils.notebook import NotebookProgressCallback

        trainer.remove_callback(NotebookProgressCallback)
    except ImportError:
        pass
    if not trainer.args.disable_tqdm:
        trainer.add_callback(RichProgress())


def before_reporters(trainer, callbacks: list) -> None:
    """Run the stage's callbacks right after DefaultFlowCallback, before the reporters
    (TensorBoard, ...): metrics they add to a log entry are then recorded too."""
    from transformers.trainer_callback import DefaultFlowCallback

    handler = trainer.callback_handler
    ours = [c for c in handler.callbacks if any(c is x for x in callbacks)]
    rest = [c for c in handler.callbacks if not any(c is x for x in callbacks)]
    at = next((i + 1 for i, c in enumerate(rest) if isinstance(c, DefaultFlowCallback)), 0)
    handler.callbacks = rest[:at] + ours + rest[at:]


def build_trainer(ctx, model, args, train_dataset, eval_dataset=None, *, collator=None,
                  cls=None, callbacks=(), **kwargs):
    """The Trainer (or ``cls``, e.g. a trl trainer; ``kwargs`` go to its constructor) for the run
    ``ctx`` (training/context.py) with lmforge's callbacks. The stage's ``callbacks`` and then
    the caller's (``ctx.callbacks``, from ``stages.run``) run before the reporting integrations.
    ``collator`` None: the trainer's own (trl's trainers build theirs; GRPOTrainer takes none)."""
    from lmforge import tracking
    from lmforge.model.adapters import callbacks as adapter_callbacks

    cfg = ctx.cfg
    tracking.start(cfg, args)  # tracker defaults (offline W&B, local MLflow store, ...)
    cls = trainer_class(cls)
    if collator is not None:
        kwargs["data_collator"] = collator
    ours = [*callbacks, *ctx.callbacks]
    trainer = cls(model=model, args=args, train_dataset=train_dataset,
                  eval_dataset=eval_dataset, processing_class=ctx.tokenizer,
                  callbacks=ours + adapter_callbacks(model, cfg.adapter), **kwargs)
    before_reporters(trainer, ours)
    from lmforge.training import faults

    faults.install(trainer, cfg)  # NaN/Inf guard, SIGINT/SIGTERM -> checkpoint and stop
    from lmforge.training import fastloss

    fastloss.install(trainer, cfg)  # train.fast_loss, train.group_by_length
    replace_progress(trainer)
    check_packing_safe(cfg, trainer, ctx.facts)
    return trainer


def train(trainer, cfg: RunConfig):
    """Train, resuming from train.resume (optimizer, scheduler, RNG and data position)."""
    from lmforge.training.common import resume_checkpoint

    checkpoint = resume_checkpoint(cfg)
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    from lmforge.training.faults import stop_on_signals

    with stop_on_signals(trainer):
        output = trainer.train(resume_from_checkpoint=checkpoint)
    from lmforge.utils.cpu_tuning import release_memory

    # the steps' activations are freed but glibc keeps their pages: handed back, so that saving,
    # the loss plot (matplotlib) and what follows do not add to a heap the steps no longer use
    release_memory()
    return output


def eval_hooks(cfg: RunConfig):
    """``lmforge.eval.training`` (generation metrics during training, best checkpoint, early
    stopping) when the config asks for it, else None. The module defines
    ``callbacks(cfg, tokenizer, template, eval_examples) -> list[TrainerCallback]`` and
    ``finalize(trainer, cfg, out_dir) -> dict`` (called after training, before the final save,
    so it may swap in the best weights; its dict is merged into metrics.json)."""
    if not (cfg.eval.during_training or cfg.eval.best_metric):
        return None
    import importlib

    return importlib.import_module("lmforge.eval.training")
