"""Stage ``sft``: supervised fine-tuning on conversations (labels only on trained spans)."""

from __future__ import annotations

import logging
import time

from lmforge.config.run import RunConfig
from lmforge.stages.result import RunResult

log = logging.getLogger(__name__)


def run(cfg: RunConfig) -> RunResult:
    from transformers import Trainer

    from lmforge.data import pipeline
    from lmforge.data.collate import PadCollator
    from lmforge.data.encode import IGNORE
    from lmforge.data.templates import resolve_template
    from lmforge.model.adapters import attach
    from lmforge.model.loader import load_model, load_tokenizer
    from lmforge.stages import common
    from lmforge.stages.args import build_arguments
    from lmforge.utils.rundir import write_run_files

    out = write_run_files(cfg)
    common.setup_torch(cfg)
    tokenizer = load_tokenizer(cfg.model)
    template = resolve_template(cfg.model.template, tokenizer)
    data = pipeline.build(cfg, tokenizer, template)
    train_ds, eval_ds = data.train, data.eval
    args = build_arguments(cfg, has_eval=eval_ds is not None)
    model = attach(load_model(cfg.model, tokenizer), cfg.adapter)
    counts = common.log_parameters(model)
    trained_tokens = sum(sum(1 for x in lab if x != IGNORE) for lab in train_ds["labels"])
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                      data_collator=PadCollator(tokenizer.pad_token_id),
                      processing_class=tokenizer)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=common.resume_checkpoint(cfg))
    elapsed = time.perf_counter() - start
    if eval_ds is not None:
        trainer.evaluate()
    common.save_final(trainer, tokenizer, template, out)
    epochs_done = trainer.state.epoch or 0
    extra = dict(counts, train_examples=len(train_ds),
                 train_tokens_per_second=trained_tokens * epochs_done / max(elapsed, 1e-9))
    return common.finish(trainer, result, out, extra)
