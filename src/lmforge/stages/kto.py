"""Stage ``kto``: Kahneman-Tversky optimisation on trl's KTOTrainer, from unpaired answers with a
desirable/undesirable label (``data.format: kto``), or from preference pairs split into one
desirable and one undesirable example each (``data.format: preference``). The reference is the
frozen base, or the policy with its adapter disabled."""

from __future__ import annotations

from lmforge.config.run import RunConfig
from lmforge.training.result import RunResult

CURVES = {"margins.png": ("rewards/margins", "eval_rewards/margins"),
          "kl.png": ("kl", "eval_kl")}


def build_args(cfg: RunConfig, has_eval: bool):
    from trl import KTOConfig

    from lmforge.training.args import build_arguments
    from lmforge.training.preference_common import trl_kwargs

    m = cfg.method()
    return build_arguments(cfg, has_eval, cls=KTOConfig, method_kwargs=dict(
        trl_kwargs(cfg, KTOConfig), beta=m.beta, loss_type=m.loss,
        desirable_weight=m.desirable_weight, undesirable_weight=m.undesirable_weight,
        max_length=cfg.data.max_length, precompute_ref_log_probs=m.precompute_ref_log_probs))


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from trl import KTOTrainer

    from lmforge.data.preference_build import unpaired_dataset
    from lmforge.data.preference_data import load_records
    from lmforge.training import common
    from lmforge.training import preference_common as pc
    from lmforge.training.context import start
    from lmforge.training.trainer import build_trainer

    ctx = start(cfg, callbacks)
    tokenizer, m = ctx.tokenizer, ctx.method()
    train, evals, stats = load_records(cfg, tokenizer, ctx.template, "unpaired")
    args = build_args(cfg, has_eval=evals is not None)
    policy, reference = pc.policy_and_reference(ctx, need_reference=not m.precompute_ref_log_probs)
    counts = common.log_parameters(policy)
    trainer = build_trainer(ctx, policy, args, unpaired_dataset(train, tokenizer),
                            unpaired_dataset(evals, tokenizer) if evals else None,
                            cls=KTOTrainer, ref_model=reference)
    pc.use_disabled_adapter_as_reference(trainer, cfg)
    extra = dict(counts, train_examples=len(train), **pc.flat_stats(stats))
    return pc.train(ctx, trainer, extra, CURVES, summarize="rewards/margins")
