"""The KL penalty to the base model is what keeps an RL policy from hacking an easy reward.

Toy: the reward is the share of digit characters in the completion (rl_toys.digit_share), which
the tiny model can hack by writing digits only. Without the penalty (grpo.beta 0) 24 steps of GRPO
drive the policy far from the base (its text collapses); with it the KL to the base stays small.
The KL is measured here, the same way for both runs: completions sampled from the trained policy
on held-out prompts, summed per-token k3 estimates of the KL (lmforge.rl.diagnostics).
"""

from __future__ import annotations

from lmforge import stages
from tests.conftest import write_jsonl
from tests.integration.rl_toys import config, example, prompt_data, prompt_rows, write_rewards


def _train(tmp_path, rewards, beta: float):
    out = tmp_path / f"beta{beta}"
    out.mkdir()
    data = dict(prompt_data(out, 32), eval=str(write_jsonl(out / "eval.jsonl",
                                                           prompt_rows(16, seed=9))))
    cfg = config(example("grpo"), out, data=data,
                 grpo={"reward_functions": [f"{rewards}:digit_share"], "beta": beta,
                       "diagnostic_samples": 16},
                 train={"max_steps": 24, "batch_size": 16, "learning_rate": 2e-2,
                        "save_steps": 24, "eval_steps": 24, "logging_steps": 1})
    return cfg, stages.run(cfg)


def _kl_to_base(cfg, result, base_dir) -> tuple[float, float]:
    """(KL to the base, distinct-2) of samples of the trained policy on held-out prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmforge.data.prompts import prompt_text
    from lmforge.rl.diagnostics import build

    tok = AutoTokenizer.from_pretrained(result.output_dir)
    texts = [prompt_text([{"role": "user", "content": r["prompt"]}], tok.chat_template, tok)
             for r in prompt_rows(32, seed=11)]
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    watch = build(cfg.method().model_copy(update={"diagnostic_samples": 32}), tok, ids,
                  [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id],
                  reference=AutoModelForCausalLM.from_pretrained(base_dir))
    found = watch.measure(AutoModelForCausalLM.from_pretrained(result.output_dir))
    return found["kl_to_base"], found["distinct_2"]


def test_beta_keeps_the_kl_to_the_base_bounded_on_a_hackable_reward(tmp_path, tiny_model_dir):
    rewards = write_rewards(tmp_path)
    free_cfg, free = _train(tmp_path, rewards, beta=0.0)
    held_cfg, held = _train(tmp_path, rewards, beta=0.5)
    free_kl, free_d2 = _kl_to_base(free_cfg, free, tiny_model_dir)
    held_kl, held_d2 = _kl_to_base(held_cfg, held, tiny_model_dir)
    # without the penalty the policy hacks the reward and drifts far away from the base
    assert free.metrics["reward_last"] > free.metrics["reward_first"] + 0.2, free.metrics
    assert free_kl > 3 * held_kl and free_kl > 20, (free_kl, held_kl)
    assert free_d2 < 0.5 < held_d2, (free_d2, held_d2)  # the unpenalised text collapsed
    # with it, trl's logged per-token KL stays flat instead of growing with the steps
    kls = [h["kl"] for h in held.log_history if "kl" in h and "step" in h]
    assert len(kls) >= 20 and max(kls[-5:]) < 1.5, kls
    assert "kl" not in free.log_history[-2]  # beta 0: no reference model, nothing logged
    # the diagnostics caught the collapse of the unpenalised run on their own
    assert free.metrics["diag_distinct_2"] < held.metrics["diag_distinct_2"]
