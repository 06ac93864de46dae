"""PPO's tensor functions against values computed by hand (see the comments for the arithmetic)."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.rl import functional as F
from lmforge.rl.rollout import response_mask
from lmforge.rl.state import PromptSampler


def t(*rows):
    """A [B, T] tensor from rows."""
    return torch.tensor(rows, dtype=torch.float32)


def v(*values):
    """A 1-D tensor."""
    return torch.tensor(values, dtype=torch.float32)


def test_masked_mean_and_var():
    x, m = v(1.0, 2.0, 3.0, 100.0), v(1, 1, 1, 0)
    assert F.masked_mean(x, m).item() == pytest.approx(2.0)
    # (1-2)^2 + 0 + (3-2)^2 = 2; biased 2/3, unbiased 2/2
    assert F.masked_var(x, m, unbiased=False).item() == pytest.approx(2 / 3)
    assert F.masked_var(x, m).item() == pytest.approx(1.0)
    assert F.masked_mean(t([1.0, 3.0], [5.0, 7.0]), t([1, 0], [1, 1]), dim=1).tolist() == [1, 6]


def test_whiten_zero_mean_unit_variance_inside_mask_zero_outside():
    x, m = v(1.0, 2.0, 3.0, 100.0), v(1, 1, 1, 0)
    w = F.whiten(x, m)
    # mean 2, unbiased std 1 -> [-1, 0, 1], masked entry 0
    assert w.tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    assert F.whiten(x, m, shift_mean=False).tolist() == pytest.approx([1, 2, 3, 0], abs=1e-6)


def test_gae_by_hand():
    # one row, T=3, gamma=0.9, lam=0.5; V after the end is 0
    r, v, m = t([1.0, 0.0, 2.0]), t([0.5, 1.0, 1.5]), t([1, 1, 1])
    adv, ret = F.gae(r, v, m, gamma=0.9, lam=0.5)
    d2 = 2.0 + 0.9 * 0.0 - 1.5  # 0.5
    d1 = 0.0 + 0.9 * 1.5 - 1.0  # 0.35
    d0 = 1.0 + 0.9 * 1.0 - 0.5  # 1.4
    a2 = d2
    a1 = d1 + 0.45 * a2  # 0.575
    a0 = d0 + 0.45 * a1  # 1.65875
    assert adv[0].tolist() == pytest.approx([a0, a1, a2])
    assert ret[0].tolist() == pytest.approx([a0 + 0.5, a1 + 1.0, a2 + 1.5])


def test_gae_ignores_padding_after_the_end():
    r, v = t([1.0, 5.0, 7.0]), t([0.5, 9.0, 9.0])
    adv, ret = F.gae(r, v, t([1, 0, 0]), gamma=1.0, lam=1.0)
    # only the first token is real: A = r0 + V_after(=0) - V0 = 0.5
    assert adv[0].tolist() == pytest.approx([0.5, 0.0, 0.0])
    assert ret[0].tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_gae_with_gamma_lam_one_is_reward_to_go_minus_value():
    r, v, m = t([0.0, 0.0, 3.0]), t([1.0, 2.0, 0.0]), t([1, 1, 1])
    adv, _ = F.gae(r, v, m, gamma=1.0, lam=1.0)
    assert adv[0].tolist() == pytest.approx([3 - 1, 3 - 2, 3 - 0])


def test_policy_loss_clipping_by_hand():
    old = v(0.0, 0.0)
    new = torch.log(v(1.5, 0.5))  # ratios 1.5 and 0.5
    adv = v(1.0, -1.0)
    loss, stats = F.policy_loss(new, old, adv, v(1, 1), clip_range=0.2)
    # token 0: max(-1*1.5, -1*1.2) = -1.2 ; token 1: max(1*0.5, 1*0.8) = 0.8 ; mean -0.2
    assert loss.item() == pytest.approx(-0.2)
    assert stats["policy/clipfrac"] == pytest.approx(1.0)
    assert stats["policy/ratio"] == pytest.approx(1.0)
    lr = math.log(1.5), math.log(0.5)
    assert stats["policy/approx_kl"] == pytest.approx(0.5 * (lr[0] ** 2 + lr[1] ** 2) / 2)


def test_policy_loss_unclipped_inside_the_trust_region():
    old, new = v(0.0), torch.log(v(1.1))
    loss, stats = F.policy_loss(new, old, v(2.0), v(1), clip_range=0.2)
    assert loss.item() == pytest.approx(-2.2)
    assert stats["policy/clipfrac"] == 0.0


def test_value_loss_by_hand():
    values, old, returns = v(1.0, 0.0), v(0.5, 0.5), v(2.0, 0.0)
    loss, stats = F.value_loss(values, old, returns, v(1, 1), clip_range_value=0.2)
    # token 0: clipped v = 0.7 -> max((1-2)^2, (0.7-2)^2) = 1.69
    # token 1: clipped v = 0.3 -> max((0-0)^2, (0.3-0)^2) = 0.09 ; 0.5 * mean = 0.445
    assert loss.item() == pytest.approx(0.445)
    assert stats["value/clipfrac"] == pytest.approx(1.0)
    assert stats["value/error"] == pytest.approx(0.5)


def test_kl_estimators_by_hand():
    logp, ref = v(math.log(0.5)), v(math.log(0.25))
    lr = math.log(2.0)
    assert F.kl_estimate(logp, ref, "k1").item() == pytest.approx(lr)
    assert F.kl_estimate(logp, ref, "k2").item() == pytest.approx(0.5 * lr ** 2)
    # k3 = (r - 1) - log r with r = p_ref / p = 0.5
    assert F.kl_estimate(logp, ref, "k3").item() == pytest.approx((0.5 - 1) - math.log(0.5))
    assert F.kl_estimate(ref, logp, "abs").item() == pytest.approx(lr)
    with pytest.raises(ValueError):
        F.kl_estimate(logp, ref, "k9")


def test_k3_is_never_negative_and_k1_averages_to_the_true_kl():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(5), 0)
    q = torch.softmax(torch.randn(5), 0)
    samples = torch.multinomial(p, 200000, replacement=True)
    lp, lq = p.log()[samples], q.log()[samples]
    true_kl = (p * (p.log() - q.log())).sum().item()
    assert F.kl_estimate(lp, lq, "k1").mean().item() == pytest.approx(true_kl, abs=0.01)
    assert F.kl_estimate(lp, lq, "k3").mean().item() == pytest.approx(true_kl, abs=0.01)
    assert (F.kl_estimate(lp, lq, "k3") >= -1e-7).all()


def test_shape_rewards_puts_the_score_on_the_last_real_token():
    logp, ref = t([-1.0, -1.0, -1.0], [-1.0, -2.0, 0.0]), t([-1.5, -1.0, -1.0], [-1.0, -1.0, 0.0])
    mask = t([1, 1, 0], [1, 1, 1])
    rewards, kl = F.shape_rewards(v(2.0, 3.0), logp, ref, mask, kl_coef=0.1)
    # row 0: kl = [0.5, 0, (masked)] -> rewards [-0.05, 0 + 2.0, 0]
    # row 1: kl = [0, -1, 0] -> rewards [0, 0.1, 0 + 3.0]
    assert rewards.tolist() == [pytest.approx([-0.05, 2.0, 0.0]),
                                pytest.approx([0.0, 0.1, 3.0])]
    assert kl.tolist() == [pytest.approx([0.5, 0.0, 0.0]), pytest.approx([0.0, -1.0, 0.0])]


def test_zero_kl_identical_policies_reduce_to_the_plain_policy_gradient():
    """With kl_coef 0 the rewards are the scores, and with pi == pi_old the clipped objective's
    gradient equals that of the vanilla policy gradient -mean(A * log pi)."""
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 6, requires_grad=True)
    tokens = torch.randint(0, 6, (3, 4))
    mask = t([1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0])
    logp = F.logprobs_from_logits(logits, tokens)
    scores = v(1.0, -2.0, 0.5)
    rewards, _ = F.shape_rewards(scores, logp.detach(), logp.detach() - 0.3, mask, kl_coef=0.0)
    assert rewards.sum(1).tolist() == pytest.approx(scores.tolist())
    adv, _ = F.gae(rewards, torch.zeros(3, 4), mask, gamma=1.0, lam=1.0)
    ppo_loss, stats = F.policy_loss(logp, logp.detach(), adv, mask, clip_range=0.2)
    (g_ppo,) = torch.autograd.grad(ppo_loss, logits, retain_graph=True)
    pg_loss = -F.masked_mean(adv * logp, mask)
    (g_pg,) = torch.autograd.grad(pg_loss, logits)
    assert stats["policy/clipfrac"] == 0.0
    assert torch.allclose(g_ppo, g_pg, atol=1e-7)
    assert g_pg.abs().sum() > 0


def test_adaptive_kl_controller_moves_towards_the_target():
    ctl = F.AdaptiveKLController(0.1, target=1.0, horizon=100)
    assert ctl.update(2.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))  # error clipped
    fixed = F.AdaptiveKLController(0.1, target=None, horizon=100)
    assert fixed.update(5.0, 10) == 0.1


def test_entropy_of_uniform_logits_is_log_v():
    assert F.entropy_from_logits(torch.zeros(2, 8)).tolist() == pytest.approx([math.log(8)] * 2)


def test_response_mask_keeps_tokens_through_the_first_end_of_turn():
    resp = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 0, 0, 0]])
    assert response_mask(resp, [2]).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]


def test_prompt_sampler_is_a_seeded_epoch_shuffle_that_resumes():
    s = PromptSampler(5, 2, seed=3)
    batches = [s.next() for _ in range(5)]
    flat = [i for b in batches for i in b]
    assert sorted(flat[:5]) == list(range(5))  # the first epoch covers every prompt once
    again = PromptSampler(5, 2, seed=3)
    first = [again.next() for _ in range(2)]
    resumed = PromptSampler(5, 2, seed=3, **again.state())
    assert first + [resumed.next() for _ in range(3)] == batches


@pytest.mark.parametrize("top_k", [0, 7])
def test_rollout_sampling_keeps_the_configured_top_k(tiny_model_dir, top_k):
    """generate() fills a None top_k with transformers' default of 50: "0: off" must reach it as 0
    (else every rollout samples from a truncated distribution the config never asked for)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.config.methods import PPOMethod
    from lmforge.rl.rollout import generation_config

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    method = PPOMethod(reward_functions=["length"], top_k=top_k)
    merged, _ = model._prepare_generation_config(generation_config(method, tok, [tok.eos_token_id]))
    assert merged.top_k == top_k and merged.temperature == method.temperature
