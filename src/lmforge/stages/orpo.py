"""Stage ``orpo``: odds-ratio preference optimisation (SFT loss on the chosen answer plus an
odds-ratio term; no reference model) on trl's experimental ORPOTrainer (trl 1.x moved ORPO to
``trl.experimental``). Note: that trainer prepends the tokenizer's BOS token to every sequence."""

from __future__ import annotations

from lmforge.config.run import RunConfig
from lmforge.errors import DependencyError
from lmforge.training.result import RunResult

CURVES = {"margins.png": ("rewards/margins", "eval_rewards/margins"),
          "accuracy.png": ("rewards/accuracies", "eval_rewards/accuracies")}


def _orpo():
    try:
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer
    except ImportError as exc:
        raise DependencyError("trl", "core", "stage orpo (trl.experimental.orpo)") from exc
    return ORPOConfig, ORPOTrainer


def build_args(cfg: RunConfig, has_eval: bool):
    from lmforge.training.args import build_arguments
    from lmforge.training.preference_common import trl_kwargs

    config_cls, _ = _orpo()
    m = cfg.method()
    return build_arguments(cfg, has_eval, cls=config_cls, method_kwargs=dict(
        trl_kwargs(cfg, config_cls), beta=m.beta, max_length=cfg.data.max_length,
        max_completion_length=cfg.data.max_target_length))


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from lmforge.data.preference_build import pairs_dataset
    from lmforge.data.preference_data import load_records
    from lmforge.training import common
    from lmforge.training import preference_common as pc
    from lmforge.training.context import start
    from lmforge.training.trainer import build_trainer

    _, trainer_cls = _orpo()
    ctx = start(cfg, callbacks)
    tokenizer = ctx.tokenizer
    train, evals, stats = load_records(cfg, tokenizer, ctx.template, "pair")
    args = build_args(cfg, has_eval=evals is not None)
    policy, _ = pc.policy_and_reference(ctx, need_reference=False)  # ORPO has no reference
    counts = common.log_parameters(policy)
    trainer = build_trainer(ctx, policy, args, pairs_dataset(train, tokenizer),
                            pairs_dataset(evals, tokenizer) if evals else None, cls=trainer_cls)
    extra = dict(counts, train_examples=len(train), **pc.flat_stats(stats))
    return pc.train(ctx, trainer, extra, CURVES, summarize="rewards/margins")
