"""Stage ``sft``: supervised fine-tuning on conversations (labels only on trained spans).

Runs on transformers' Trainer (trl's SFTTrainer would re-tokenize; our pipeline already produced
ids and proven label masks). ``train_lm`` is the whole workflow, shared with stage ``pt``.
"""

from __future__ import annotations

from lmforge.config.run import RunConfig
from lmforge.training.result import RunResult


def train_lm(ctx, method_kwargs: dict | None = None) -> RunResult:
    """Data -> model -> Trainer -> train (resume) -> final save -> metrics.json + loss.png."""
    from lmforge.data import pipeline
    from lmforge.distributed.ranks import main_first
    from lmforge.training import common
    from lmforge.training import trainer as T
    from lmforge.training.args import build_arguments
    from lmforge.utils.rundir import write_json

    cfg, tokenizer = ctx.cfg, ctx.tokenizer
    with main_first():  # several processes: rank 0 tokenizes, the others read its cache
        data = pipeline.build(cfg, tokenizer, ctx.template)
    model = T.prepare_model(cfg, tokenizer, ctx.facts)
    counts = common.log_parameters(model)
    train_ds, eval_ds, collator = T.prepare_data(cfg, data, tokenizer, model, ctx.facts)
    write_json(ctx.out, "data_stats.json", data.stats)  # the pre-flight statistics of this run
    args = build_arguments(cfg, has_eval=eval_ds is not None, method_kwargs=method_kwargs)
    hooks = T.eval_hooks(cfg)  # generation metrics during training, best checkpoint
    stage_callbacks = hooks.callbacks(cfg, tokenizer, ctx.template, data.eval_examples) \
        if hooks else []
    trainer = T.build_trainer(ctx, model, args, train_ds, eval_ds, collator=collator,
                              callbacks=stage_callbacks)
    output = T.train(trainer, cfg)
    extra = dict(counts, train_examples=len(data.train), train_rows=len(train_ds))
    if hooks:
        extra.update(hooks.finalize(trainer, cfg, ctx.out) or {})
    if eval_ds is not None and not _evaluated_at_end(trainer):
        trainer.evaluate()
    common.save_final(trainer, ctx)
    return common.finish(ctx, trainer, output, extra)


def _evaluated_at_end(trainer) -> bool:
    steps = [h.get("step") for h in trainer.state.log_history if "eval_loss" in h]
    return bool(steps) and steps[-1] == trainer.state.global_step


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from lmforge.training.context import start

    ctx = start(cfg, callbacks)
    alpha = cfg.method().neftune_noise_alpha
    return train_lm(ctx, {"neftune_noise_alpha": alpha} if alpha is not None else None)
