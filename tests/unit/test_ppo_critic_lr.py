"""``ppo.critic_lr_ratio``: the critic (value head, separate backbone) gets its own learning rate,
the policy keeps the run's; the schedule moves both together."""

from __future__ import annotations

import pytest
import torch


def _args(tmp_path):
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, use_cpu=True,
                             lr_scheduler_type="linear", report_to=[])


def test_critic_group_runs_at_its_ratio(tmp_path):
    from lmforge.rl.rollout import ValueHead
    from lmforge.stages.ppo import _optimizer

    policy, head = torch.nn.Linear(4, 4), ValueHead(4)
    frozen = torch.nn.Linear(4, 4).requires_grad_(False)
    optimizer, scheduler = _optimizer(_args(tmp_path), policy, [head, frozen, None], 10.0, 10)
    policy_group, critic_group = optimizer.param_groups
    assert {id(p) for p in policy_group["params"]} == {id(p) for p in policy.parameters()}
    assert {id(p) for p in critic_group["params"]} == {id(p) for p in head.parameters()}
    assert critic_group["lr"] == policy_group["lr"] * 10
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert critic_group["lr"] == pytest.approx(policy_group["lr"] * 10, rel=1e-9)


def test_shared_parameters_stay_in_the_policy_group(tmp_path):
    from lmforge.stages.ppo import _optimizer

    policy = torch.nn.Linear(4, 4)
    optimizer, _ = _optimizer(_args(tmp_path), policy, [policy], 10.0, 10)
    assert len(optimizer.param_groups) == 1  # a critic on the policy's own weights: one rate

