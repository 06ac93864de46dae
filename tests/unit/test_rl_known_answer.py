"""PPO's maths on a task with a known answer: a two-armed bandit (one token per response, reward 1
for token 0 and 0 for token 1). The pieces of lmforge.rl.functional, wired as lmforge.rl.ppo wires
them (shape_rewards -> gae -> whiten -> clipped policy and value losses), must find the better arm,
and the value estimate must converge to the expected reward of the policy."""

from __future__ import annotations

import pytest
import torch

from lmforge.rl import functional as F


def _iteration(logits, value, optimizer, batch: int, epochs: int, train_policy: bool = True):
    with torch.no_grad():
        actions = torch.distributions.Categorical(logits=logits).sample((batch,))
        old = torch.log_softmax(logits, -1)[actions][:, None]
        scores = (actions == 0).float()
        mask = torch.ones(batch, 1)
        rewards, kl = F.shape_rewards(scores, old, old, mask, kl_coef=0.1)
        assert torch.all(kl == 0)  # the policy is its own reference here
        old_values = value.detach().expand(batch, 1)
        advantages, returns = F.gae(rewards, old_values, mask, gamma=1.0, lam=0.95)
        assert torch.allclose(returns, scores[:, None])  # one step: the return is the score
        advantages = F.whiten(advantages, mask)
    for _ in range(epochs):
        logprobs = torch.log_softmax(logits, -1)[actions][:, None]
        pg, _ = F.policy_loss(logprobs, old, advantages, mask, clip_range=0.2)
        vf, _ = F.value_loss(value.expand(batch, 1), old_values, returns, mask,
                             clip_range_value=0.2)
        loss = (pg if train_policy else 0) + 0.5 * vf
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return advantages, actions


def test_whitened_advantages_point_to_the_better_arm():
    torch.manual_seed(0)
    logits, value = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([logits, value], lr=0.0)  # look only: no update
    advantages, actions = _iteration(logits, value, opt, batch=64, epochs=1)
    assert advantages.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert advantages.std().item() == pytest.approx(1.0, abs=1e-2)
    assert torch.all(advantages[actions == 0] > 0) and torch.all(advantages[actions == 1] < 0)


def test_ppo_finds_the_better_arm_and_the_value_learns_its_expected_reward():
    torch.manual_seed(0)
    logits, value = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([logits, value], lr=0.05)
    for _ in range(80):
        _iteration(logits, value, opt, batch=32, epochs=2)
    p_best = torch.softmax(logits, -1)[0].item()
    assert p_best > 0.95
    assert value.item() == pytest.approx(p_best, abs=0.1)  # E[reward] under the policy


def test_value_of_a_fixed_policy_converges_to_its_mean_reward():
    torch.manual_seed(1)
    logits = torch.tensor([0.0, 1.0986])  # p(arm 0) = 1 / (1 + 3) = 0.25
    value = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([value], lr=0.05)
    for _ in range(150):
        _iteration(logits, value, opt, batch=64, epochs=1, train_policy=False)
    assert value.item() == pytest.approx(0.25, abs=0.05)
