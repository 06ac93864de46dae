"""Stage ``ppo``: lmforge's own PPO (trl 1.x has none) — see lmforge.rl for the loop and maths.

Models: the policy (base + the configured adapter); the reference policy is the same model with
its adapter disabled when there is a peft adapter (no second copy), else a frozen copy of the
base; the critic is a value head on the policy's hidden states, or a separate backbone + head.
One iteration = ``train.batch_size`` completions (``ppo.num_generations`` per prompt) ->
``ppo.ppo_epochs`` passes of mini-batch updates. ``train.max_steps`` counts iterations (default:
epochs over the prompts).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError
from lmforge.training.result import RunResult

log = logging.getLogger(__name__)


def build_args(cfg: RunConfig, has_eval: bool):
    """TrainingArguments for optimizer/scheduler settings (and to check train.extra early)."""
    from lmforge.training.args import build_arguments

    args = build_arguments(cfg, has_eval)
    # whole groups of ppo.num_generations per batch: checked at validation (crosscheck.py)
    if args.fp16:
        raise ConfigError("train.precision: fp16 is not supported by stage ppo; use bf16 or fp32")
    if cfg.adapter.type == "adalora":
        raise ConfigError("adapter.type: stage ppo does not run AdaLoRA's rank schedule (a "
                          "Trainer callback); use lora")
    return args


def load_prompt_sets(cfg: RunConfig, tokenizer, template: str):
    """(train, eval or None, stats): prompts rendered with the template (or raw text, with
    ppo.prompt_template: raw) and tokenized."""
    from lmforge.data.prompts import PromptExample, rl_prompt_text
    from lmforge.rl.driver import PromptSet, prompt_stats, tokenize_prompts
    from lmforge.data.preference_data import load_examples

    max_prompt = cfg.prompt_budget  # data.max_source_length, else max_length - max_new_tokens
    train, evals = load_examples(cfg, lambda ex: ex, (PromptExample,), "prompt")
    sets, stats = [], {}
    for name, examples in (("train", train), ("eval", evals)):
        if not examples:
            sets.append(None)
            continue
        texts = [rl_prompt_text(e, cfg.method().prompt_template, template, tokenizer)
                 for e in examples]
        ids, truncated = tokenize_prompts(texts, tokenizer, max_prompt)
        stats[name] = prompt_stats(examples, ids, truncated)
        sets.append(PromptSet(ids, texts, [e.extras for e in examples]))
    log.info("prompts: %s", stats)
    return sets[0], sets[1], stats


def _no_dropout(model) -> None:
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def _placed(model, device):
    """On ``device`` (a k-bit model is placed by bitsandbytes when loaded and stays there)."""
    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        return model
    return model.to(device)


def build_models(ctx, device):
    """(policy, reference or None, value head, separate critic backbone or None)."""
    from lmforge.model.loader import load_model
    from lmforge.rl.rollout import ValueHead
    from lmforge.rl.state import is_peft
    from lmforge.training.trainer import prepare_model

    cfg, tokenizer = ctx.cfg, ctx.tokenizer
    policy = _placed(prepare_model(cfg, tokenizer, ctx.facts), device)
    _no_dropout(policy)
    reference = None
    if not is_peft(policy):
        reference = load_model(cfg.model, tokenizer, facts=ctx.facts)
        reference = reference.to(device).eval().requires_grad_(False)
    backbone = None
    if cfg.method().critic == "separate":
        backbone = _placed(prepare_model(cfg, tokenizer, ctx.facts), device)
        _no_dropout(backbone)
    hidden = policy.get_input_embeddings().weight.shape[1]
    head = ValueHead(getattr(policy.config, "hidden_size", hidden)).to(device)
    return policy, reference, head, backbone


def _optimizer(args, policy, critic: list, critic_lr_ratio: float, total_updates: int):
    """One optimizer, two groups: the policy's trainable weights at the run's learning rate, the
    critic's (value head, separate backbone) at ``critic_lr_ratio`` times it."""
    from transformers import Trainer, get_scheduler

    def trainable(modules):
        return [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]

    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    groups = [{"params": trainable([policy]), "weight_decay": args.weight_decay}]
    owned = {id(p) for p in groups[0]["params"]}
    critic_params = [p for p in trainable(critic) if id(p) not in owned]
    if critic_params:
        groups.append({"params": critic_params, "weight_decay": args.weight_decay,
                       "lr": args.learning_rate * critic_lr_ratio})
    optimizer = cls(groups, **kwargs)
    scheduler = get_scheduler(args.lr_scheduler_type, optimizer,
                              num_warmup_steps=args.get_warmup_steps(total_updates),
                              num_training_steps=total_updates)
    return optimizer, scheduler


def iterations(cfg: RunConfig, n_prompts: int) -> int:
    """``train.max_steps``, else the epochs over the prompts (``train.batch_size`` completions
    = ``batch_size / ppo.num_generations`` prompts per process)."""
    from lmforge.rl.parallel import world_size

    if cfg.train.max_steps > 0:
        return cfg.train.max_steps
    per_step = cfg.train.batch_size // cfg.method().num_generations * world_size()
    return max(1, math.ceil(n_prompts / per_step * cfg.train.epochs))


def run(cfg: RunConfig, *, callbacks=()) -> RunResult:
    from lmforge.rewards.combine import RewardSet, configured_rewards
    from lmforge.rl.diagnostics import build as diagnostics
    from lmforge.rl.driver import run_loop
    from lmforge.rl.events import LoopEvents
    from lmforge.rl.ppo import PPO
    from lmforge.data.prompts import turn_template
    from lmforge.training import common
    from lmforge.training.context import start
    from lmforge.training.device import cpu_autocast
    from lmforge.training.preference_common import flat_stats

    ctx = start(cfg)  # the callbacks go to the loop's events (below), not to a Trainer
    out, tokenizer, template, m = ctx.out, ctx.tokenizer, ctx.template, ctx.method()
    tokenizer.chat_template = template  # checkpoints and the final model carry the one used
    train, evals, data_stats = load_prompt_sets(cfg, tokenizer, template)
    args = build_args(cfg, has_eval=evals is not None)
    eos_ids = common.end_of_turn_ids(tokenizer, turn_template(m.prompt_template, template))
    watch = diagnostics(m, tokenizer, (evals or train).ids, eos_ids)  # reward-hacking signs
    # refuses, before any model loads, what it cannot fire
    events = LoopEvents([*callbacks, *filter(None, [watch])], args)
    rewards = RewardSet(configured_rewards(m, args.device))
    policy, reference, head, backbone = build_models(ctx, args.device)
    counts = common.log_parameters(policy)
    if watch is not None:
        watch.reference = reference  # None with an adapter: the policy with it disabled
    total = iterations(cfg, len(train.ids))
    mini = m.mini_batch_size or cfg.train.batch_size
    updates = total * m.ppo_epochs * math.ceil(cfg.train.batch_size / mini)
    optimizer, scheduler = _optimizer(args, policy, [head, backbone], m.critic_lr_ratio, updates)
    ppo = PPO(policy, head, tokenizer, rewards, m, optimizer, scheduler, args.device, eos_ids,
              cfg.train.max_grad_norm, mini, ref_policy=reference, critic_backbone=backbone,
              seed=cfg.train.seed)
    # bf16 on a CPU with native bf16: autocast over float32 weights (a GPU's bf16 run already
    # holds bfloat16 weights); the Trainer stages get the same from accelerate
    with cpu_autocast(ctx.facts.precision if ctx.facts.use_cpu else "fp32"):
        history, seconds = run_loop(ppo, train, evals, cfg, out, total,
                                    common.resume_checkpoint(cfg), cfg.eval.max_samples, events)
    save_final(ppo, tokenizer, out)
    return finish(out, history, seconds, dict(counts, **flat_stats(data_stats),
                                              **(watch.summary() if watch else {})))


def save_final(ppo, tokenizer, out: Path) -> None:
    """The policy as save_pretrained writes it (what export and inference load), the tokenizer
    with the chat template used, a generation config that stops at end of turn; critic/ aside.
    Several processes hold the same weights: the main one writes them."""
    from safetensors.torch import save_file

    from lmforge.rl import parallel

    if not parallel.is_main():
        return
    ppo.policy.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    gen = getattr(ppo.policy, "generation_config", None)
    if gen is not None:
        gen.eos_token_id = ppo.eos_ids if len(ppo.eos_ids) > 1 else ppo.eos_ids[0]
        gen.pad_token_id = tokenizer.pad_token_id
        gen.save_pretrained(str(out))
    (out / "critic").mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in ppo.value_head.state_dict().items()},
              str(out / "critic" / "value_head.safetensors"))
    if ppo.critic_backbone is not None:
        ppo.critic_backbone.save_pretrained(str(out / "critic"), safe_serialization=True)


def finish(out: Path, history: list[dict], seconds: float, extra: dict) -> RunResult:
    from lmforge.rl import parallel
    from lmforge.training.preference_common import reward_summary, write_results

    metrics = {"train_runtime": seconds, "global_step": history[-1]["step"] if history else 0,
               "world_size": parallel.world_size()}
    losses = [h["loss"] for h in history if "loss" in h]
    if losses:
        metrics["train_loss"] = sum(losses) / len(losses)
    metrics.update(reward_summary(history, "reward_mean"))
    for key in ("eval_reward_mean", "kl"):
        last = [h[key] for h in history if key in h]
        if last:
            metrics[key] = last[-1]
    metrics.update(extra)
    if parallel.is_main():
        write_results(out, history, metrics, curves={"reward.png": ("reward_mean",
                                                                    "eval_reward_mean")})
    return RunResult(out, metrics, history)
