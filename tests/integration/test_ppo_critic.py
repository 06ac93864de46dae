"""The critic and the policy (lmforge.rl.rollout.forward on the tiny model): a value head on the
policy's hidden states trains the policy's weights through the value loss unless
ppo.critic_trains_policy is false, where the head reads them detached; a separate critic's
backbone still learns either way. And a run with a detached head still learns the toy task."""

from __future__ import annotations

import torch

from lmforge import stages
from lmforge.rl.rollout import ValueHead, forward, sample
from tests.integration.rl_toys import config, example, first_last, prompt_data, write_rewards


def _batch(model, tok):
    from transformers import GenerationConfig

    ids = tok(["Write about one two.", "Write about red dog."], add_special_tokens=False)
    gen = GenerationConfig(do_sample=True, max_new_tokens=4, top_k=50,
                           pad_token_id=tok.pad_token_id, eos_token_id=[tok.eos_token_id])
    torch.manual_seed(0)
    return sample(model, ids["input_ids"], gen, tok.pad_token_id, [tok.eos_token_id], "cpu")


def _value_grads(model, head, batch, backbone=None, detach=False) -> tuple[float, float]:
    """(gradient norm on the policy, on the head + separate backbone) of the values' sum."""
    model.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)
    _, values, _ = forward(model, batch, 1.0, head, backbone, detach_shared=detach)
    values.sum().backward()

    def norm(modules):
        return sum(p.grad.norm().item() for m in modules for p in m.parameters()
                   if p.grad is not None)

    return norm([model]), norm([head] + ([backbone] if backbone is not None else []))


def test_a_detached_value_head_never_moves_the_policy(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = _batch(model, tok)
    head = ValueHead(model.config.hidden_size)
    torch.nn.init.normal_(head.summary.weight)  # a head that has learnt something
    shared_policy, shared_head = _value_grads(model, head, batch)
    assert shared_policy > 0 and shared_head > 0  # the shared trunk learns from the value loss
    detached_policy, detached_head = _value_grads(model, head, batch, detach=True)
    assert detached_policy == 0 and detached_head == shared_head  # the same head gradient
    backbone = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    sep_policy, sep_critic = _value_grads(model, head, batch, backbone=backbone, detach=True)
    assert sep_policy == 0 and sep_critic > shared_head  # the separate backbone still learns


def test_ppo_with_a_detached_value_head_learns(tmp_path):
    rewards = write_rewards(tmp_path)
    cfg = config(example("ppo"), tmp_path, data=prompt_data(tmp_path),
                 ppo={"reward_functions": [f"{rewards}:digit_share"], "diagnostic_samples": 0,
                      "critic_trains_policy": False, "value_epochs": 4},
                 train={"max_steps": 8, "batch_size": 16, "learning_rate": 1e-3,
                        "save_steps": 8})
    history = stages.run(cfg).log_history
    first, last = first_last(history, "reward_mean")
    assert last > first + 0.1, (first, last)
    assert history[-1]["value/mean"] != 0  # the head learnt through the detached features
    assert "value/fit_error" in history[-1]
