"""Stage ``dpo``: direct preference optimisation on trl's DPOTrainer, with every loss trl offers
(``dpo.loss``: sigmoid, ipo, hinge, robust, ...). The reference is the frozen base model; with a
peft adapter it is the policy with the adapter disabled (no second copy in memory), and
``dpo.reference_model`` names a different one."""

from __future__ import annotations

from lmforge.config.run import RunConfig
from lmforge.training.result import RunResult

CURVES = {"margins.png": ("rewards/margins", "eval_rewards/margins"),
          "accuracy.png": ("rewards/accuracies", "eval_rewards/accuracies")}


def build_args(cfg: RunConfig, has_eval: bool):
    from trl import DPOConfig

    from lmforge.training.args import build_arguments
    from lmforge.training.preference_common import trl_kwargs

    m = cfg.method()
    return build_arguments(cfg, has_eval, cls=DPOConfig, method_kwargs=dict(
        trl_kwargs(cfg, DPOConfig), beta=m.beta,
        loss_type=m.loss if isinstance(m.loss, list) else [m.loss],
        loss_weights=m.loss_weights, label_smoothing=m.label_smoothing,
        max_length=cfg.data.max_length, precompute_ref_log_probs=m.precompute_ref_log_probs))


def build(ctx):
    """(trainer, extra metrics): everything but training."""
    from trl import DPOTrainer

    from lmforge.data.preference_build import pairs_dataset
    from lmforge.data.preference_data import load_records
    from lmforge.training import common
    from lmforge.training import preference_common as pc
    from lmforge.training.exact_metrics import exact  # pair-exact accuracy
    from lmforge.training.trainer import build_trainer

    cfg, tokenizer, m = ctx.cfg, ctx.tokenizer, ctx.method()
    train, evals, stats = load_records(cfg, tokenizer, ctx.template, "pair")
    args = build_args(cfg, has_eval=evals is not None)
    policy, reference = pc.policy_and_reference(ctx, m.reference_model,
                                                need_reference=not m.precompute_ref_log_probs)
    counts = common.log_parameters(policy)
    trainer = build_trainer(ctx, policy, args, pairs_dataset(train, tokenizer),
                            pairs_dataset(evals, tokenizer) if evals else None,
                            cls=exact(DPOTrainer), ref_model=reference)
    pc.use_disabled_adapter_as_reference(trainer, cfg)
    return trainer, dict(counts, train_examples=len(train), **pc.flat_stats(stats))


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from lmforge.training import preference_common as pc
    from lmforge.training.context import start

    ctx = start(cfg, callbacks)
    trainer, extra = build(ctx)
    return pc.train(ctx, trainer, extra, CURVES, summarize="rewards/margins")
