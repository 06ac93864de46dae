"""Stage ``grpo``: group relative policy optimisation on trl's GRPOTrainer.

Prompts (``data.format: prompt``) are rendered with the run's chat template, or taken as raw text
that the model continues (``grpo.prompt_template: raw``); every other column of
a row reaches the reward functions as a keyword argument (trl's convention:
``f(prompts, completions, completion_ids, **columns) -> list[float]``). Rewards come from
``grpo.reward_functions`` (built-ins from lmforge.rewards or ``module:function``) and/or a reward
model, weighted. ``train.batch_size`` counts completions: ``batch_size / num_generations`` prompts
per step. Generation runs in transformers (no vLLM), so it works on the CPU. The trainer is built by
``training.trainer.build_trainer`` like every Trainer stage: manifested checkpoints, resume, the
NaN/Inf guard, signal stop, and the trained completion tokens counted (``train_tokens``).
"""

from __future__ import annotations

import logging

from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError
from lmforge.training.result import RunResult
from lmforge.utils.rundir import write_metrics

log = logging.getLogger(__name__)

CURVES = {"reward.png": ("reward", "eval_reward")}


def build_args(cfg: RunConfig, has_eval: bool, weights: list[float] | None = None):
    from trl import GRPOConfig

    from lmforge.training.args import build_arguments
    from lmforge.training.preference_common import trl_kwargs

    m = cfg.method()
    eval_batch = cfg.train.per_device_eval_batch
    # the training batch's whole groups are checked at validation (config/crosscheck.py); whether
    # an eval set exists is known only once the data is read
    if has_eval and eval_batch % m.num_generations:
        raise ConfigError(f"train.eval_batch_size: {eval_batch} must be a multiple of "
                          f"grpo.num_generations ({m.num_generations})")
    return build_arguments(cfg, has_eval, cls=GRPOConfig, method_kwargs=dict(
        trl_kwargs(cfg, GRPOConfig), num_generations=m.num_generations,
        max_completion_length=m.max_new_tokens, temperature=m.temperature, top_p=m.top_p,
        top_k=m.top_k, beta=m.beta, epsilon=m.epsilon, num_iterations=m.num_iterations,
        loss_type=m.loss, scale_rewards=m.scale_rewards, reward_weights=weights,
        mask_truncated_completions=m.mask_truncated_completions, use_vllm=m.use_vllm,
        log_completions=False))


def prompt_stats(cfg: RunConfig, examples: list, texts: list[str], tokenizer):
    """(texts, pre-flight statistics): trl does not cut prompts, so those over the budget
    (``cfg.prompt_budget``) lose their beginning here, as in stage ppo (data.truncation)."""
    from lmforge.data.preference_fit import cut_prompts
    from lmforge.rl.driver import prompt_stats as stats_of

    texts, cut = cut_prompts(texts, tokenizer, cfg.prompt_budget)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return texts, stats_of(examples, ids, cut)


def prompt_dataset(examples: list, texts: list[str], tokenizer):
    """prompt (rendered) + the rows' extra columns, for GRPOTrainer."""
    import datasets

    from lmforge.data.prompts import strip_auto_bos

    keys = sorted({k for e in examples for k in e.extras} - {"prompt"})
    cols = {"prompt": [strip_auto_bos(t, tokenizer) for t in texts]}
    for k in keys:
        cols[k] = [e.extras.get(k) for e in examples]
    try:
        return datasets.Dataset.from_dict(cols)
    except (TypeError, ValueError) as exc:  # arrow: a column with mixed types
        raise ConfigError(f"data: the extra columns of the prompt rows cannot form a table "
                          f"({exc}); give each column one type") from None


def prompt_datasets(cfg: RunConfig, splits: dict, tokenizer, template: str):
    """({split: prompt dataset}, {split: pre-flight statistics}) for the splits with examples."""
    from lmforge.data.prompts import rl_prompt_text

    style = cfg.method().prompt_template
    datasets, stats = {}, {}
    for split, examples in splits.items():
        if examples:
            texts = [rl_prompt_text(e, style, template, tokenizer) for e in examples]
            texts, stats[split] = prompt_stats(cfg, examples, texts, tokenizer)
            datasets[split] = prompt_dataset(examples, texts, tokenizer)
    log.info("prompts: %s", stats)
    return datasets, stats


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from trl import GRPOTrainer

    from lmforge.data.preference_data import load_examples
    from lmforge.data.prompts import PromptExample, turn_template
    from lmforge.rewards.combine import configured_rewards, reward_weights
    from lmforge.training import common
    from lmforge.training import preference_common as pc
    from lmforge.training.context import start
    from lmforge.training.trainer import build_trainer

    ctx = start(cfg, callbacks)
    tokenizer, template, m = ctx.tokenizer, ctx.template, ctx.method()
    train, evals = load_examples(cfg, lambda ex: ex, (PromptExample,), "prompt")
    args = build_args(cfg, evals is not None, reward_weights(m))
    rewards = configured_rewards(m, args.device)
    policy, _ = pc.policy_and_reference(ctx, need_reference=False)  # trl makes the reference
    ends = turn_template(m.prompt_template, template)  # raw prompts end at EOS
    policy.generation_config.eos_token_id = common.end_of_turn_ids(tokenizer, ends)
    policy.generation_config.pad_token_id = tokenizer.pad_token_id
    counts = common.log_parameters(policy)
    datasets, stats = prompt_datasets(cfg, {"train": train, "eval": evals}, tokenizer, template)
    watch = diagnostics(cfg, datasets, tokenizer, policy.generation_config.eos_token_id)
    # no collator: GRPOTrainer batches raw prompt rows and generates the completions itself
    trainer = build_trainer(ctx, policy, args, datasets["train"], datasets.get("eval"),
                            callbacks=[watch] if watch else [], cls=GRPOTrainer,
                            reward_funcs=[r.function for r in rewards])
    pc.use_disabled_adapter_as_reference(trainer, cfg)
    if watch is not None:
        watch.reference = trainer.ref_model  # a frozen copy (full fine-tuning, beta > 0) or None
    extra = dict(counts, train_examples=len(train), **pc.flat_stats(stats))
    result = pc.train(ctx, trainer, extra, CURVES, summarize="reward")
    if watch is not None and watch.results:
        result.metrics.update(watch.summary())
        if trainer.is_world_process_zero():
            write_metrics(ctx.out, result.metrics)
    return result


def diagnostics(cfg: RunConfig, datasets: dict, tokenizer, eos_ids):
    """The reward-hacking diagnostics callback (lmforge.rl.diagnostics) on the held-out prompts,
    else the training prompts, tokenized as trl tokenizes them; None when switched off."""
    from lmforge.rl.diagnostics import build

    n = cfg.method().diagnostic_samples
    if not n:
        return None
    prompts = datasets.get("eval", datasets["train"])[:n]["prompt"]
    eos = list(eos_ids) if isinstance(eos_ids, (list, tuple)) else [eos_ids]
    return build(cfg.method(), tokenizer, tokenizer(list(prompts))["input_ids"], eos)
