"""Stage ``sft``: supervised fine-tuning on conversations (labels only on trained spans).

Runs on transformers' Trainer (trl's SFTTrainer would re-tokenize; our pipeline already produced
ids and proven label masks). ``train_lm`` is the whole workflow, shared with stage ``pt``.
"""

from __future__ import annotations

import logging

from lmforge.config.run import RunConfig
from lmforge.training.result import RunResult

log = logging.getLogger(__name__)


def train_lm(cfg: RunConfig, template: str | None, tokenizer,
             method_kwargs: dict | None = None, callbacks=()) -> RunResult:
    """Data -> model -> Trainer -> train (resume) -> final save -> metrics.json + loss.png."""
    from lmforge.data import pipeline
    from lmforge.training import common
    from lmforge.training import trainer as T
    from lmforge.training.args import build_arguments
    from lmforge.utils.rundir import write_json, write_run_files

    from lmforge.distributed.ranks import main_first

    out = write_run_files(cfg)
    with main_first():  # several processes: rank 0 tokenizes, the others read its cache
        data = pipeline.build(cfg, tokenizer, template)
    model = T.prepare_model(cfg, tokenizer)
    counts = common.log_parameters(model)
    train_ds, eval_ds, collator = T.prepare_data(cfg, data, tokenizer, model)
    write_json(out, "data_stats.json", data.stats)  # the pre-flight statistics of this run
    args = build_arguments(cfg, has_eval=eval_ds is not None, method_kwargs=method_kwargs)
    hooks = T.eval_hooks(cfg)
    if hooks:
        callbacks = [*hooks.callbacks(cfg, tokenizer, template, data.eval_examples), *callbacks]
    trainer = T.build_trainer(cfg, model, args, train_ds, eval_ds, collator, tokenizer,
                              callbacks=callbacks)
    output = T.train(trainer, cfg)
    extra = dict(counts, train_examples=len(data.train), train_rows=len(train_ds))
    if hooks:
        extra.update(hooks.finalize(trainer, cfg, out) or {})
    if eval_ds is not None and not _evaluated_at_end(trainer):
        trainer.evaluate()
    common.save_final(trainer, tokenizer, template, out)
    return common.finish(trainer, output, out, extra)


def _evaluated_at_end(trainer) -> bool:
    steps = [h.get("step") for h in trainer.state.log_history if "eval_loss" in h]
    return bool(steps) and steps[-1] == trainer.state.global_step


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from lmforge.data.templates import resolve_template
    from lmforge.model.loader import load_tokenizer
    from lmforge.training import common

    common.setup_torch(cfg)
    tokenizer = load_tokenizer(cfg.model)
    template = resolve_template(cfg.model.template, tokenizer)
    method = cfg.method()
    kwargs = {}
    if method.neftune_noise_alpha is not None:
        kwargs["neftune_noise_alpha"] = method.neftune_noise_alpha
    return train_lm(cfg, template, tokenizer, kwargs, callbacks=callbacks)
