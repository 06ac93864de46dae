"""The outer PPO loop of a run: batches of prompts, logging (console, TensorBoard, history for the
curves), evaluation on held-out prompts, checkpoints, resume."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.rl import parallel
from lmforge.rl.state import PromptSampler, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class PromptSet:
    """Tokenized prompts with their rendered text and extra columns (for reward functions)."""

    ids: list[list[int]]
    texts: list[str]
    extras: list[dict] = field(default_factory=list)

    def take(self, idx: list[int]) -> tuple[list[list[int]], list[str], dict[str, list]]:
        keys = sorted({k for i in idx for k in self.extras[i]})
        columns = {k: [self.extras[i].get(k) for i in idx] for k in keys}
        return [self.ids[i] for i in idx], [self.texts[i] for i in idx], columns


def tokenize_prompts(texts: list[str], tokenizer, max_length: int | None
                     ) -> tuple[list[list[int]], int]:
    """Ids of each rendered prompt (no special tokens added: the template wrote them); prompts
    over ``max_length`` keep their last tokens, where the question and the header are."""
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    truncated = 0
    for i, x in enumerate(ids):
        if max_length and len(x) > max_length:
            ids[i], truncated = x[-max_length:], truncated + 1
    if truncated:
        log.warning("%d prompts were longer than %d tokens and lost their beginning", truncated,
                    max_length)
    return ids, truncated


def prompt_stats(examples: list, ids: list[list[int]], truncated: int) -> dict:
    lengths = [len(x) for x in ids] or [0]
    return {"examples": len(ids), "prompt_tokens_mean": sum(lengths) / len(lengths),
            "prompt_tokens_max": max(lengths), "prompts_truncated": truncated,
            "extra_columns": sorted({k for e in examples for k in e.extras})}


class Tracker:
    """History (a list of dicts with 'step', like Trainer.state.log_history) + TensorBoard."""

    def __init__(self, out: Path, tensorboard: bool, history: list | None = None):
        self.history = history or []
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "logs"))

    def log(self, step: int, stats: dict) -> None:
        clean = {k: float(v) for k, v in stats.items() if isinstance(v, (int, float))
                 and not math.isnan(float(v))}
        self.history.append({"step": step, **clean})
        if self.writer is not None:
            for k, v in clean.items():
                self.writer.add_scalar(k if k.startswith("eval") else f"train/{k}", v, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def evaluate(ppo, evals: PromptSet, limit: int | None, batch_size: int) -> dict:
    """Mean reward (and the other sample statistics) on up to ``limit`` held-out prompts, in
    batches of ``batch_size`` shared out among the processes; every mean is over all the
    prompts (or tokens) evaluated, whatever the batch sizes."""
    n = min(len(evals.ids), limit or len(evals.ids))
    parts, rewards = [], []
    starts = range(0, n, batch_size)
    for i in starts[parallel.rank()::parallel.world_size()]:
        batch = ppo.evaluate(*evals.take(list(range(i, min(n, i + batch_size)))))
        parts, rewards = parts + batch[0], rewards + batch[1]
    return parallel.summarize(parts, rewards, prefix="eval_")


def run_loop(ppo, train: PromptSet, evals: PromptSet | None, cfg, out: Path, total: int,
             resume_from: str | None, eval_limit: int | None = None,
             events=None) -> tuple[list, float]:
    """Train for ``total`` iterations; returns (history, seconds spent training). ``events``
    (rl/events.py) drives the run's TrainerCallbacks."""
    from lmforge.rl.events import LoopEvents

    t = cfg.train
    world, rank = parallel.world_size(), parallel.rank()
    # each iteration takes batch_size / num_generations prompts per process (batch_size counts
    # completions): this process's are its slice
    per_process = t.batch_size // cfg.method().num_generations
    sampler = PromptSampler(len(train.ids), per_process * world, t.seed)
    history, start = [], 0
    if resume_from:
        state = load_checkpoint(Path(resume_from), ppo.policy, ppo.value_head,
                                ppo.critic_backbone, ppo.optimizer, ppo.scheduler, ppo.generator)
        start, history = state["global_step"], state["history"]
        sampler = PromptSampler(len(train.ids), per_process * world, t.seed, **state["sampler"])
        ppo.kl_ctl.value = state["kl_coef"]
        log.info("resumed from %s at step %d", resume_from, start)
    report = [r for r in t.report_to if r != "none"]
    if set(report) - {"tensorboard"}:
        log.warning("stage ppo logs to TensorBoard only (train.report_to: %s)", report)
    tracker = Tracker(out, "tensorboard" in report and parallel.is_main(), history)
    eval_every = t.eval_steps or t.save_steps
    events = events or LoopEvents((), None)
    events.begin(ppo, total, start, tracker.history)
    began = time.perf_counter()
    try:
        for step in range(start + 1, total + 1):
            events.step_begin()
            idx = sampler.next()[rank * per_process:(rank + 1) * per_process]
            stats = ppo.step(*train.take(idx))
            evaluated = evals is not None and (step % eval_every == 0 or step == total)
            if evaluated:
                stats.update(evaluate(ppo, evals, eval_limit, t.per_device_eval_batch))
            tracker.log(step, stats)
            events.step_end(step, stats, evaluated)
            if step % t.logging_steps == 0 or step in (1, total):
                log.info("step %d/%d  reward %.4f  kl %.4f  loss %.4f", step, total,
                         stats["reward_mean"], stats["kl"], stats["loss"])
            asked, stop = events.should_save(), events.should_stop()
            if step % t.save_steps == 0 or step == total or asked:
                save_checkpoint(out, step, ppo.policy, ppo.value_head, ppo.critic_backbone,
                                ppo.optimizer, ppo.scheduler, ppo.generator,
                                {"history": tracker.history, "sampler": sampler.state(),
                                 "kl_coef": ppo.kl_ctl.value, "world_size": world},
                                t.save_total_limit, ppo.tokenizer)
                events.saved()
            if stop:
                log.info("stopped by a callback after step %d", step)
                break
        events.end()
    finally:
        tracker.close()
    return tracker.history, time.perf_counter() - began
