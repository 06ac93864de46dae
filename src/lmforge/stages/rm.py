"""Stage ``rm``: a reward model — the base with a one-output sequence-classification head, trained
on chosen/rejected pairs with the pairwise loss -log sigmoid(r_chosen - r_rejected - margin)
(trl's RewardTrainer). Full, freeze or any peft adapter (task type SEQ_CLS: the head trains fully).

The saved model loads with plain ``AutoModelForSequenceClassification`` (``pad_token_id`` set, so
the score is read at the last real token); an adapter run saves the merged model there and the
adapter itself under ``adapter/``. ``metrics.json`` reports the eval pairwise accuracy.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lmforge.config.run import RunConfig
from lmforge.training.result import RunResult

log = logging.getLogger(__name__)

CURVES = {"accuracy.png": ("accuracy", "eval_accuracy"), "margins.png": ("margin", "eval_margin")}


def build_args(cfg: RunConfig, has_eval: bool):
    from trl import RewardConfig

    from lmforge.training.args import build_arguments
    from lmforge.training.preference_common import trl_kwargs

    m = cfg.method()
    return build_arguments(cfg, has_eval, cls=RewardConfig, method_kwargs=dict(
        trl_kwargs(cfg, RewardConfig), max_length=cfg.data.max_length,
        center_rewards_coefficient=m.center_rewards_coefficient))


def _seq_cls():
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification


def load_reward_model(cfg: RunConfig, tokenizer):
    """Base + scalar head + the configured adapter; the head always trains."""
    from lmforge.model.adapters import attach, peft_config
    from lmforge.model.loader import load_model
    from lmforge.model.portable import base_name, name_base
    from lmforge.training.device import decide

    model = load_model(cfg.model, tokenizer, adapter=cfg.adapter, auto_class=_seq_cls(),
                       num_labels=1, facts=decide(cfg))
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.use_cache = False
    a = cfg.adapter
    if not a.is_peft or a.path:
        model = attach(model, a)
        name_base(model, base_name(cfg.model, cfg.train.output_dir))
        for p in model.score.parameters() if hasattr(model, "score") else []:
            p.requires_grad = True  # freeze: the new head must learn
        return model
    from peft import get_peft_model

    if a.type == "qlora":
        from lmforge.model.quant import prepare_kbit

        model = prepare_kbit(model)
    config = peft_config(a, model)
    config.task_type = "SEQ_CLS"  # peft then trains the 'score' head fully (modules_to_save)
    model = get_peft_model(model, config)
    name_base(model, base_name(cfg.model, cfg.train.output_dir))  # portable adapter_config.json
    return model


def save_reward_model(cfg: RunConfig):
    """A save function for preference_common.train: the model AutoModelForSequenceClassification
    loads (adapters merged into a float copy of the base), tokenizer with the template used."""

    def save(trainer, ctx) -> None:
        from lmforge.rl.state import is_peft

        tokenizer, template, out = ctx.tokenizer, ctx.template, ctx.out
        model = trainer.model
        tokenizer.chat_template = template
        if is_peft(model):
            model.save_pretrained(str(out / "adapter"))
            model = _merged(cfg, tokenizer, out / "adapter")
        if model is None:  # prompt-learning adapters cannot be merged
            trainer.model.save_pretrained(str(out))
        else:
            model.config.pad_token_id = tokenizer.pad_token_id
            model.config.use_cache = True
            model.save_pretrained(str(out), safe_serialization=True)
        tokenizer.save_pretrained(str(out))

    return save


def _merged(cfg: RunConfig, tokenizer, adapter_dir: Path):
    from peft import PeftModel

    from lmforge.model.loader import load_model

    if cfg.adapter.is_peft and cfg.adapter.type not in ("lora", "qlora", "adalora"):
        log.warning("a %s adapter cannot be merged; the reward model is saved as an adapter "
                    "(load it with peft)", cfg.adapter.type)
        return None
    from lmforge.training.device import decide

    base = load_model(cfg.model, tokenizer, auto_class=_seq_cls(), num_labels=1,
                      facts=decide(cfg))
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from trl import RewardTrainer

    from lmforge.data.preference_build import rm_dataset
    from lmforge.data.preference_data import load_records
    from lmforge.training import common
    from lmforge.training import preference_common as pc
    from lmforge.training.context import start
    from lmforge.training.exact_metrics import exact  # pair-exact accuracy
    from lmforge.training.trainer import build_trainer

    ctx = start(cfg, callbacks)
    tokenizer, d, m = ctx.tokenizer, cfg.data, ctx.method()
    train, evals, stats = load_records(cfg, tokenizer, ctx.template, "pair")
    args = build_args(cfg, has_eval=evals is not None)
    train_ds, dropped = rm_dataset(train, tokenizer, d.max_length, d.truncation, m.margin)
    eval_ds = rm_dataset(evals, tokenizer, d.max_length, d.truncation, m.margin)[0] if evals \
        else None
    model = load_reward_model(cfg, tokenizer)
    counts = common.log_parameters(model)
    trainer = build_trainer(ctx, model, args, train_ds, eval_ds, cls=exact(RewardTrainer))
    extra = dict(counts, train_examples=len(train_ds), dropped_pairs=dropped,
                 **pc.flat_stats(stats))
    result = pc.train(ctx, trainer, extra, CURVES, save=save_reward_model(cfg))
    if "eval_accuracy" in result.metrics:
        log.info("reward model: eval pairwise accuracy %.3f (before training %.3f)",
                 result.metrics["eval_accuracy"], result.metrics.get("eval_accuracy_start", 0.5))
    return result
