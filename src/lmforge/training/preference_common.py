"""What the rm/dpo/kto/orpo/ppo/grpo stages share: data loading with pre-flight statistics, the
policy and its reference, training with a baseline evaluation, and the run's results (metrics.json,
loss.png and stage curves such as accuracy, margins or reward)."""

from __future__ import annotations

import logging
from pathlib import Path

from lmforge.config.run import RunConfig
from lmforge.training.result import RunResult
from lmforge.utils.plots import plot_curves
from lmforge.utils.rundir import write_metrics

log = logging.getLogger(__name__)


def flat_stats(stats: dict) -> dict:
    return {f"data_{split}_{k}": v for split, s in stats.items() for k, v in s.items()
            if isinstance(v, (int, float))}


def trl_kwargs(cfg: RunConfig, cls) -> dict:
    """Settings every trl config gets from ours, where ``cls`` has them (trl turns gradient
    checkpointing on by default, which only costs time on small models)."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    wanted = {"activation_checkpointing": cfg.model.gradient_checkpointing,  # the v6 name
              "dataset_num_proc": cfg.data.num_proc}
    return {k: v for k, v in wanted.items() if k in known}


def policy_and_reference(ctx, reference_path: str | None = None, need_reference: bool = True):
    """The policy (base + adapter) and its frozen reference: None when trl can use the policy
    with its adapter disabled (or precomputes the reference), else a copy of the base, or the
    model at ``reference_path``."""
    from lmforge.model.loader import load_model
    from lmforge.rl.state import is_peft
    from lmforge.training.trainer import prepare_model

    cfg, tokenizer = ctx.cfg, ctx.tokenizer
    policy = prepare_model(cfg, tokenizer, ctx.facts)
    if reference_path:
        ref_cfg = cfg.model.model_copy(update={"path": reference_path})
        reference = load_model(ref_cfg, tokenizer, facts=ctx.facts)
        return policy, reference.eval().requires_grad_(False)
    if not need_reference or is_peft(policy):
        return policy, None
    reference = load_model(cfg.model, tokenizer, facts=ctx.facts)
    return policy, reference.eval().requires_grad_(False)


def use_disabled_adapter_as_reference(trainer, cfg: RunConfig) -> None:
    """trl copies a given adapter into a 'ref' adapter; a NEW adapter disabled is exactly the
    base model, so drop that copy and let trl disable the adapter instead (no second copy)."""
    model = trainer.model
    if cfg.adapter.path is None and "ref" in (getattr(model, "peft_config", None) or {}):
        try:
            model.delete_adapter("ref")
        except (AttributeError, ValueError, NotImplementedError) as exc:  # some peft methods
            log.info("keeping trl's reference copy of the adapter (%s)", exc)
            return
        model.set_adapter("default")


def _evaluate(trainer) -> dict:
    return {k: v for k, v in trainer.evaluate().items()
            if k.startswith("eval_") and isinstance(v, (int, float))}


START_KEYS = ("loss", "accura", "margin", "reward")


def train(ctx, trainer, extra: dict, curves: dict[str, tuple[str, ...]], save=None,
          summarize: str | None = None) -> RunResult:
    """Evaluate before training (fresh runs with eval data: the baseline), train (resuming when
    asked), evaluate at the end, save, write metrics.json and the curves; ``summarize`` names a
    logged value whose first/last means go into the metrics (e.g. the GRPO reward)."""
    import time

    from lmforge.training import common
    from lmforge.training.trainer import train as run_training

    cfg, out = ctx.cfg, ctx.out
    has_eval = trainer.eval_dataset is not None
    baseline = _evaluate(trainer) if has_eval and common.resume_checkpoint(cfg) is None else {}
    start = time.perf_counter()
    result = run_training(trainer, cfg)
    seconds = time.perf_counter() - start
    history = list(trainer.state.log_history)
    if has_eval and not any("eval_loss" in h and h.get("step") == trainer.state.global_step
                            for h in history):
        trainer.evaluate()
        history = list(trainer.state.log_history)
    (save or common.save_final)(trainer, ctx)
    metrics = {k: v for k, v in result.metrics.items() if not k.endswith("_per_second")}
    metrics.update(train_loss=result.training_loss, train_runtime=seconds,
                   global_step=trainer.state.global_step, **extra)
    if hasattr(trainer, "total_trained_tokens"):  # a collective: every process calls it
        tokens = trainer.total_trained_tokens()
        metrics.update(train_tokens=tokens, train_tokens_per_second=tokens / seconds)
    metrics.update({f"{k}_start": v for k, v in baseline.items()
                    if any(s in k for s in START_KEYS)})
    evals = [h for h in history if "eval_loss" in h]
    if evals:
        metrics.update({k: v for k, v in evals[-1].items()
                        if k.startswith("eval_") and not k.endswith("_per_second")})
    # train() starts a fresh log history: put the step-0 evaluation back in front of it
    history = ([dict(baseline, step=0)] if baseline else []) + history
    if summarize:
        metrics.update(reward_summary(history, summarize))
    if trainer.is_world_process_zero():
        write_results(out, history, metrics, curves)
    return RunResult(out, metrics, history)


def reward_summary(history: list[dict], key: str) -> dict:
    """Mean of ``key`` over the first and the last quarter of the run (at most 5 entries each):
    the before/after numbers that show whether the policy learned."""
    values = [h[key] for h in history if key in h and "step" in h]
    if not values:
        return {}
    k = max(1, min(5, len(values) // 4))
    return {f"{key}_first": sum(values[:k]) / k, f"{key}_last": sum(values[-k:]) / k,
            key: values[-1]}


def write_results(out: Path, history: list[dict], metrics: dict,
                  curves: dict[str, tuple[str, ...]]) -> None:
    write_metrics(out, metrics)
    plot_curves(history, out / "loss.png", title=f"{out.name}: loss")
    for name, keys in curves.items():
        present = tuple(k for k in keys if any(k in h for h in history))
        if present:
            plot_curves(history, out / name, keys=present,
                        title=f"{out.name}: {', '.join(present)}")
