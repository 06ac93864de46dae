"""The PPO loop, one iteration at a time: generate -> score -> train.

``PPO.step(prompts)`` samples ``num_generations`` completions per prompt, scores them (reward
functions and/or a reward model; with several completions per prompt, each score minus the mean
of the others of its prompt: a leave-one-out baseline), turns the score into per-token rewards
with a KL penalty to the reference policy, estimates advantages with GAE, then runs
``ppo_epochs`` passes of clipped policy + value updates over mini-batches of the rollout (after
``value_epochs`` passes of the value head alone, if asked). The maths lives in
lmforge.rl.functional; this file is only the order of operations, kept readable on purpose (trl
1.x no longer ships a PPO trainer).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch

from lmforge.rl import functional as F
from lmforge.rl import parallel
from lmforge.rl.rollout import (Batch, forward, forward_with_features, generation_config,
                                 sample)


@dataclass
class Rollout:
    batch: Batch
    logprobs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    features: torch.Tensor | None = None  # what the value head read (for ppo.value_epochs)
    ref_logprobs: torch.Tensor | None = None  # for ppo.kl_penalty: loss


class PPO:
    def __init__(self, policy, value_head, tokenizer, rewards, method, optimizer, scheduler,
                 device, eos_ids: list[int], max_grad_norm: float, mini_batch_size: int,
                 ref_policy=None, critic_backbone=None, seed: int = 0):
        self.policy, self.value_head, self.tokenizer = policy, value_head, tokenizer
        self.rewards, self.m, self.device = rewards, method, device
        self.optimizer, self.scheduler = optimizer, scheduler
        self.eos_ids, self.max_grad_norm = eos_ids, max_grad_norm
        self.mini_batch_size = mini_batch_size
        self.ref_policy, self.critic_backbone = ref_policy, critic_backbone
        self.gen_config = generation_config(method, tokenizer, eos_ids)
        self.kl_ctl = F.AdaptiveKLController(method.kl_coef, method.target_kl, method.kl_horizon)
        self.generator = torch.Generator().manual_seed(seed)

    # --- rollout -----------------------------------------------------------------------------
    def _reference(self):
        """The reference policy: a frozen copy, or the policy with its adapter switched off."""
        if self.ref_policy is not None:
            return self.ref_policy, contextlib.nullcontext()
        return self.policy, self.policy.disable_adapter()

    def _forward(self, batch: Batch, with_entropy: bool = False):
        """(log-probs, values, entropy, the value head's input features) of the policy."""
        return forward_with_features(self.policy, batch, self.m.temperature, self.value_head,
                                     self.critic_backbone, with_entropy,
                                     not self.m.critic_trains_policy)

    def _scores(self, batch: Batch, prompts: list[str], columns: dict, group: int = 1
                ) -> tuple[torch.Tensor, list[tuple[float, dict]], list[float]]:
        """(shaped scores, statistics as (weight, values) parts, raw total rewards); ``group``:
        the rows are groups of that many completions of one prompt."""
        lengths = batch.mask.sum(-1).tolist()
        completion_ids = [batch.response[i, :n].tolist() for i, n in enumerate(lengths)]
        completions = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        totals, means = self.rewards(prompts, completions, completion_ids, columns)
        raw = torch.tensor(totals, dtype=torch.float32, device=self.device)
        ended = torch.isin(batch.response.gather(1, F.last_index(batch.mask)[:, None]).squeeze(1),
                           torch.tensor(self.eos_ids, device=self.device))
        scores = raw.clone()
        if self.m.missing_eos_penalty:
            scores = scores - self.m.missing_eos_penalty * (~ended).float()
        if self.m.reward_clip:
            scores = scores.clamp(-self.m.reward_clip, self.m.reward_clip)
        if group > 1 and self.m.group_baseline == "leave_one_out":
            scores = F.leave_one_out(scores, group)
        if group > 1 and self.m.group_equalize:
            scores = F.equalize_groups(scores, group)
        if self.m.whiten_rewards and len(scores) > 1:
            scores = (scores - scores.mean()) / (scores.std() + 1e-8)
        per_sequence = {"completions/mean_length": float(sum(lengths)) / len(lengths),
                        "completions/ended": ended.float().mean().item(), **means}
        return scores, [(len(lengths), per_sequence)], [float(t) for t in totals]

    @torch.no_grad()
    def rollout(self, prompt_ids: list[list[int]], prompts: list[str],
                columns: dict[str, list]) -> tuple[Rollout, list[tuple[float, dict]], list]:
        """The rollout, its statistics as (weight, values) parts and the raw rewards."""
        self.policy.eval()
        batch = sample(self.policy, prompt_ids, self.gen_config, self.tokenizer.pad_token_id,
                       self.eos_ids, self.device)
        scores, parts, raw = self._scores(batch, prompts, columns, self.m.num_generations)
        logprobs, values, entropy, features = self._forward(batch, with_entropy=True)
        model, ctx = self._reference()
        with ctx:
            ref_logprobs, _, _ = forward(model, batch, self.m.temperature)
        in_reward = self.kl_ctl.value if self.m.kl_penalty == "reward" else 0.0
        rewards, kl = F.shape_rewards(scores, logprobs, ref_logprobs, batch.mask, in_reward,
                                      self.m.kl_estimator)
        advantages, returns = F.gae(rewards, values, batch.mask, self.m.gamma, self.m.lam)
        if self.m.whiten_advantages:
            advantages = F.whiten(advantages, batch.mask)
        tokens = {"entropy": F.masked_mean(entropy, batch.mask).item(),
                  "value/mean": F.masked_mean(values, batch.mask).item(),
                  "value/explained_variance": F.explained_variance(values, returns,
                                                                   batch.mask).item()}
        parts = [(len(prompt_ids), {**parts[0][1], "kl": kl.sum(-1).mean().item()}),
                 (batch.mask.sum().item(), tokens),
                 (1, {"kl_coef": self.kl_ctl.value})]
        return (Rollout(batch, logprobs, values, advantages, returns, features, ref_logprobs),
                parts, raw)

    # --- optimisation ------------------------------------------------------------------------
    def _minibatches(self, n: int):
        order = torch.randperm(n, generator=self.generator)
        for i in range(0, n, self.mini_batch_size):
            yield order[i:i + self.mini_batch_size].to(self.device)

    def _parameters(self):
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def fit_value_head(self, ro: Rollout) -> dict:
        """``value_epochs`` passes of the value head alone over the rollout's returns, on the
        hidden states it read at rollout time (detached: no pass through the model, a few
        milliseconds), before the policy update. The advantages of this rollout are already
        computed, so the head learns from it without biasing them; the next rollout's baseline
        is the better for it."""
        params = list(self.value_head.parameters())
        error = None
        for _ in range(self.m.value_epochs):
            for idx in self._minibatches(ro.returns.shape[0]):
                values = self.value_head(ro.features[idx])
                loss = 0.5 * F.masked_mean((values - ro.returns[idx]) ** 2, ro.batch.mask[idx])
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                parallel.average_gradients(params)  # only the head's: the rest has no step
                self.optimizer.step()
                error = 2 * loss.item()
        return {} if error is None else {"value/fit_error": error}

    def update(self, ro: Rollout) -> dict:
        self.policy.train()
        sums: dict[str, float] = {}
        count = 0
        for _ in range(self.m.ppo_epochs):
            for idx in self._minibatches(ro.batch.input_ids.shape[0]):
                mb = ro.batch.select(idx)
                logprobs, values, _, _ = self._forward(mb)
                pg, pstats = F.policy_loss(logprobs, ro.logprobs[idx], ro.advantages[idx],
                                           mb.mask, self.m.clip_range)
                vf, vstats = F.value_loss(values, ro.values[idx], ro.returns[idx], mb.mask,
                                          self.m.clip_range_value)
                loss = pg + self.m.vf_coef * vf
                if self.m.kl_penalty == "loss":  # the KL's gradient itself, not in the returns
                    kl = F.masked_mean(F.kl_estimate(logprobs, ro.ref_logprobs[idx],
                                                     self.m.kl_estimator), mb.mask)
                    loss = loss + self.kl_ctl.value * kl
                    vstats = {**vstats, "policy/kl_loss": kl.item()}
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                parallel.average_gradients(self._parameters())  # several processes: one step
                if self.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self._parameters(), self.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                step = {"loss": loss.item(), "policy/loss": pg.item(), "value/loss": vf.item(),
                        **pstats, **vstats}
                for k, v in step.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
        stats = {k: v / max(count, 1) for k, v in sums.items()}
        stats["learning_rate"] = self.scheduler.get_last_lr()[0]
        return stats

    def step(self, prompt_ids: list[list[int]], prompts: list[str],
             columns: dict[str, list]) -> dict:
        """One iteration on this process's prompts (each ``num_generations`` times, the copies
        of a prompt side by side); statistics over every process's."""
        k = self.m.num_generations
        prompt_ids, prompts = repeat(prompt_ids, k), repeat(prompts, k)
        columns = {name: repeat(values, k) for name, values in columns.items()}
        began = time.perf_counter()
        ro, parts, raw = self.rollout(prompt_ids, prompts, columns)
        rolled = time.perf_counter()
        update = {**self.fit_value_head(ro), **self.update(ro)}
        times = {"time/rollout_s": rolled - began, "time/update_s": time.perf_counter() - rolled}
        stats = parallel.summarize([*parts, (1, update), (1, times)], raw)
        # the controller moves with the KL of the whole iteration, identically on every process
        self.kl_ctl.update(stats["kl"], len(prompt_ids) * parallel.world_size())
        return stats

    @torch.no_grad()
    def evaluate(self, prompt_ids: list[list[int]], prompts: list[str],
                 columns: dict[str, list]) -> tuple[list[tuple[float, dict]], list[float]]:
        """Fresh samples on held-out prompts (no update): statistics as (weight, values) parts
        and the raw rewards, for lmforge.rl.parallel.summarize."""
        self.policy.eval()
        batch = sample(self.policy, prompt_ids, self.gen_config, self.tokenizer.pad_token_id,
                       self.eos_ids, self.device)
        _, parts, raw = self._scores(batch, prompts, columns)
        return parts, raw


def repeat(items: list, k: int) -> list:
    """Each item ``k`` times in a row: [a, b] -> [a, a, b, b] for k = 2."""
    return [x for x in items for _ in range(k)]
