"""Stage orpo (trl.experimental's ORPOTrainer): no reference model; the odds-ratio margin grows
and the result is a plain causal LM."""

from __future__ import annotations

from lmforge import stages
from tests.integration.rl_toys import config, example, preference_data


def test_orpo_trains_and_prefers_the_chosen_answers(tmp_path):
    cfg = config(example("orpo"), tmp_path, data=preference_data(tmp_path, 32, 8),
                 train={"max_steps": 8, "batch_size": 8, "save_steps": 8, "eval_steps": 8,
                        "learning_rate": 5e-3})
    result = stages.run(cfg)
    m = result.metrics
    assert m["eval_loss"] < m["eval_loss_start"]
    assert m["eval_rewards/margins"] > m["eval_rewards/margins_start"], m
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert model.generation_config.eos_token_id == 2  # <|im_end|>, the template's end of turn
