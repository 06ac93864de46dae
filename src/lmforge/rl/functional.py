"""PPO's mathematics as pure tensor functions (no models, no state), each unit-tested against
hand-computed values in tests/unit/test_rl_functional.py.

Shapes: ``[B, T]`` over the response tokens of a batch; ``mask`` is 1 on real response tokens and
0 on padding after the end of a response (a contiguous prefix per row). trl 1.x has no PPO
trainer any more, which is why lmforge carries its own (see lmforge.rl.ppo).
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
           eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries; zero outside the mask."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def logprobs_from_logits(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) for each position: logits ``[B, T, V]``, tokens ``[B, T]``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    p = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(-1)


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from samples of the policy.

    With log r = logp_policy - logp_ref: k1 = log r, k2 = (log r)^2 / 2,
    k3 = (exp(-log r) - 1) + log r, abs = |log r| (Schulman's estimators; k3 is unbiased and
    never negative).
    """
    log_ratio = logprobs - ref_logprobs
    if kind == "k1":
        return log_ratio
    if kind == "k2":
        return 0.5 * log_ratio ** 2
    if kind == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    if kind == "abs":
        return log_ratio.abs()
    raise ValueError(f"unknown KL estimator {kind!r} (k1, k2, k3, abs)")


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row (0 for an empty row)."""
    return (mask.long().sum(-1) - 1).clamp(min=0)


def leave_one_out(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each score minus the mean score of the other members of its group (RLOO's baseline).
    ``scores`` ``[B]`` holds consecutive groups of ``group_size`` (the completions of one prompt):
    the baseline depends on the prompt but not on the completion it is subtracted from, so the
    policy gradient stays unbiased while the prompt's own difficulty cancels out."""
    if group_size < 2 or scores.shape[0] % group_size:
        raise ValueError(f"leave_one_out: {scores.shape[0]} scores are not groups of "
                         f"{group_size} >= 2")
    groups = scores.view(-1, group_size)
    others = (groups.sum(-1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(scores.shape)


def equalize_groups(scores: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """Each group of ``group_size`` consecutive scores divided by its own standard deviation and
    multiplied by the pooled one (the root mean square of the groups' deviations): every prompt
    weighs the same in the update, however spread its completions' scores are (GRPO's
    per-group scaling), while the batch keeps its scale next to the KL penalty. A group whose
    scores are all equal stays as it is."""
    groups = scores.view(-1, group_size)
    std = groups.std(-1, keepdim=True)
    pooled = std.pow(2).mean().sqrt()
    scaled = torch.where(std > eps, groups / std.clamp(min=eps) * pooled, groups)
    return scaled.reshape(scores.shape)


def shape_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                  mask: torch.Tensor, kl_coef: float, kind: str = "k1"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: ``-kl_coef * KL_t`` on every response token, plus the sequence score
    on its last token. Returns (rewards, per-token KL), both zero outside the mask."""
    m = mask.to(logprobs.dtype)
    kl = kl_estimate(logprobs, ref_logprobs, kind) * m
    rewards = -kl_coef * kl
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last_index(mask)] += scores.to(rewards.dtype)
    return rewards * m, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation. delta_t = r_t + gamma V_{t+1} - V_t and
    A_t = delta_t + gamma lam A_{t+1}, with V = 0 after the last real token.
    Returns (advantages, returns = advantages + values), zero outside the mask."""
    m = mask.to(values.dtype)
    values, rewards = values * m, rewards * m
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    T = values.shape[1]
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * m[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * m


def explained_variance(values: torch.Tensor, returns: torch.Tensor,
                       mask: torch.Tensor) -> torch.Tensor:
    """1 - Var(returns - values) / Var(returns) over the masked tokens: 1 for a perfect critic,
    0 for one no better than the mean return, below 0 for one that adds noise to the
    advantages (a baseline worse than none)."""
    var = masked_var(returns, mask, unbiased=False)
    if var <= 0:
        return torch.zeros((), dtype=returns.dtype)
    return 1 - masked_var(returns - values, mask, unbiased=False) / var


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float) -> tuple[torch.Tensor, dict]:
    """PPO's clipped surrogate: mean over tokens of max(-A r, -A clip(r, 1-e, 1+e)) with
    r = exp(logp - logp_old). Stats: fraction clipped, approximate KL to the old policy."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"policy/clipfrac": masked_mean((clipped > unclipped).float(), mask).item(),
                 "policy/approx_kl": masked_mean(0.5 * log_ratio ** 2, mask).item(),
                 "policy/ratio": masked_mean(ratio, mask).item()}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, clip_range_value: float) -> tuple[torch.Tensor, dict]:
    """Clipped value loss: 0.5 * mean max((V - R)^2, (V_clipped - R)^2), where V_clipped stays
    within clip_range_value of the value at rollout time."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(loss_unclipped, loss_clipped), mask)
    with torch.no_grad():
        stats = {"value/clipfrac": masked_mean((loss_clipped > loss_unclipped).float(),
                                               mask).item(),
                 "value/error": masked_mean(loss_unclipped, mask).item()}
    return loss, stats


class AdaptiveKLController:
    """Ziegler et al.'s controller: move kl_coef so the observed KL approaches ``target``."""

    def __init__(self, init: float, target: float | None, horizon: int):
        self.value, self.target, self.horizon = init, target, horizon

    def update(self, current_kl: float, n_steps: int) -> float:
        if self.target is not None:
            error = max(-0.2, min(0.2, current_kl / self.target - 1.0))
            self.value *= 1.0 + error * n_steps / self.horizon
        return self.value
