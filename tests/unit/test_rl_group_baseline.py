"""PPO with several completions per prompt (ppo.num_generations) and the leave-one-out baseline
(lmforge.rl.functional.leave_one_out), on values computed by hand and on a task with a known
answer: a bandit whose reward has a large prompt-dependent part that no action changes. The
leave-one-out baseline cancels that part exactly; a baseline shared by the whole batch (whitening,
what a value head that has not learnt the prompts amounts to) leaves it in the advantages as
noise, and the policy finds the better arm later."""

from __future__ import annotations

import pytest
import torch

from lmforge.rl import functional as F
from lmforge.rl.ppo import repeat


def test_leave_one_out_by_hand():
    # group 1: [1, 2, 6] -> 1 - (2+6)/2 = -3, 2 - (1+6)/2 = -1.5, 6 - (1+2)/2 = 4.5
    # group 2: [0, 0, 3] -> -1.5, -1.5, 3
    scores = torch.tensor([1.0, 2.0, 6.0, 0.0, 0.0, 3.0])
    out = F.leave_one_out(scores, 3)
    assert out.tolist() == pytest.approx([-3.0, -1.5, 4.5, -1.5, -1.5, 3.0])
    # a constant added to one group (the prompt's own difficulty) changes nothing
    shifted = scores + torch.tensor([5.0, 5.0, 5.0, -2.0, -2.0, -2.0])
    assert F.leave_one_out(shifted, 3).tolist() == pytest.approx(out.tolist())
    # each group's advantages sum to zero; with k = 2 they are +-(difference)
    assert out.view(2, 3).sum(-1).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert F.leave_one_out(torch.tensor([1.0, 4.0]), 2).tolist() == [-3.0, 3.0]


def test_leave_one_out_refuses_what_is_not_groups():
    with pytest.raises(ValueError, match="groups of 3"):
        F.leave_one_out(torch.zeros(4), 3)
    with pytest.raises(ValueError, match=">= 2"):
        F.leave_one_out(torch.zeros(4), 1)


def test_repeat_puts_the_copies_of_a_prompt_side_by_side():
    assert repeat(["a", "b"], 3) == ["a", "a", "a", "b", "b", "b"]
    assert repeat([[1], [2, 3]], 1) == [[1], [2, 3]]


def _bandit(group_baseline: bool, seed: int, iterations: int = 20) -> float:
    """p(better arm) after ``iterations`` PPO iterations of 4 prompts x 4 completions. Reward:
    the prompt's offset (N(0, 4^2), fixed per prompt) + 1 for arm 0; the policy (one pair of
    logits for every prompt) cannot change the offset."""
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.randn(64, generator=gen) * 4.0
    logits = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    k, prompts = 4, 4
    mask = torch.ones(k * prompts, 1)
    for _ in range(iterations):
        with torch.no_grad():
            chosen = torch.randint(0, 64, (prompts,), generator=gen).repeat_interleave(k)
            probs = torch.softmax(logits, -1)
            actions = torch.multinomial(probs, k * prompts, replacement=True, generator=gen)
            old = torch.log_softmax(logits, -1)[actions][:, None]
            scores = offsets[chosen] + (actions == 0).float()
            if group_baseline:
                scores = F.leave_one_out(scores, k)
            rewards, _ = F.shape_rewards(scores, old, old, mask, kl_coef=0.0)
            advantages, _ = F.gae(rewards, torch.zeros_like(rewards), mask, 1.0, 1.0)
            advantages = F.whiten(advantages, mask)
        for _ in range(2):
            new = torch.log_softmax(logits, -1)[actions][:, None]
            loss, _ = F.policy_loss(new, old, advantages, mask, clip_range=0.2)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return torch.softmax(logits, -1)[0].item()


def test_leave_one_out_cancels_the_prompt_offset_and_learns_faster():
    seeds = range(6)
    grouped = [_bandit(True, s) for s in seeds]
    batch = [_bandit(False, s) for s in seeds]
    # the group baseline sees only the arm's effect: every run is as sure of the better arm
    assert min(grouped) > 0.95 and max(grouped) - min(grouped) < 0.02, grouped
    # the batch baseline sees it through the offsets' noise: every run is less sure
    assert max(batch) < min(grouped), (grouped, batch)
    assert sum(grouped) / len(seeds) > sum(batch) / len(seeds) + 0.08, (grouped, batch)


def test_equalize_groups_gives_every_group_the_pooled_spread():
    # group 1 [-1, 1]: std sqrt(2); group 2 [-3, 3]: std 3 sqrt(2); pooled sqrt((2 + 18) / 2)
    scores = torch.tensor([-1.0, 1.0, -3.0, 3.0, 0.5, 0.5])
    out = F.equalize_groups(scores, 2)
    pooled = ((2.0 + 18.0 + 0.0) / 3) ** 0.5
    assert out.tolist() == pytest.approx([-pooled / 2 ** 0.5, pooled / 2 ** 0.5,
                                          -pooled / 2 ** 0.5, pooled / 2 ** 0.5, 0.5, 0.5])
    # the groups now have one spread; signs and order within a group are kept
    spreads = out.view(3, 2)[:2].std(-1)
    assert spreads[0].item() == pytest.approx(spreads[1].item())


def test_explained_variance_by_hand():
    returns = torch.tensor([[1.0, 3.0], [5.0, 100.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    # returns 1, 3, 5: variance 8/3; a perfect critic 1, the mean 0, a constant offset still 1
    assert F.explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    assert F.explained_variance(torch.full_like(returns, 3.0), returns, mask).item() == \
        pytest.approx(0.0, abs=1e-6)
    assert F.explained_variance(returns + 2.0, returns, mask).item() == pytest.approx(1.0)
    # values 3, 1, 5 against 1, 3, 5: residuals -2, 2, 0, variance 8/3: 1 - 1 = 0
    values = torch.tensor([[3.0, 1.0], [5.0, 0.0]])
    assert F.explained_variance(values, returns, mask).item() == pytest.approx(0.0, abs=1e-6)
    # values -1, 3, 9: residuals 2, 0, -4, mean -2/3, variance 56/9 > 8/3: worse than none
    values = torch.tensor([[-1.0, 3.0], [9.0, 0.0]])
    assert F.explained_variance(values, returns, mask).item() == pytest.approx(1 - (56 / 9) / (8 / 3))
