"""TRL's conversational formats train end to end with data.format: auto on the tiny model: implicit
prompt preference pairs (dpo), unpaired conversational rows (kto), conversational
prompt-completion rows (sft), message-list prompts (grpo); and KTO rows under sft report the rows
they do not use."""

from __future__ import annotations

import json
import math

from lmforge import stages
from lmforge.data.read import UNDESIRABLE
from tests.conftest import write_jsonl
from tests.integration.rl_toys import config, example, preference_rows, write_rewards


def chat(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def run(stage: str, tmp_path, rows, **sections):
    train = write_jsonl(tmp_path / f"{stage}.jsonl", rows)
    base = example(stage)
    data = {"train": str(train), "eval": None, "format": "auto", "max_length": 64, "cache": False}
    steps = {"max_steps": 2, "batch_size": 4, "save_steps": 2, "eval_steps": 2,
             "logging_steps": 1}
    return stages.run(config(base, tmp_path, data=data, train=steps, **sections))


def losses(result) -> list[float]:
    return [h["loss"] for h in result.log_history if "loss" in h]


def test_dpo_on_implicit_prompt_conversations(tmp_path):
    rows = [{"chosen": chat(r["prompt"], r["chosen"]), "rejected": chat(r["prompt"], r["rejected"])}
            for r in preference_rows(8, seed=1)]
    result = run("dpo", tmp_path, rows)
    assert losses(result) and all(math.isfinite(x) for x in losses(result))


def test_kto_on_unpaired_conversational_rows(tmp_path):
    rows = [{"prompt": chat(r["prompt"], "")[:1], "completion": chat("", answer)[1:],
             "label": good} for r in preference_rows(4, seed=2)
            for answer, good in ((r["chosen"], True), (r["rejected"], False))]
    result = run("kto", tmp_path, rows)
    assert losses(result) and all(math.isfinite(x) for x in losses(result))


def test_sft_on_conversational_prompt_completion_and_kto_rows(tmp_path):
    rows = [{"prompt": chat(r["prompt"], "")[:1], "completion": chat("", r["chosen"])[1:]}
            for r in preference_rows(8, seed=3)]
    result = run("sft", tmp_path, rows)
    assert losses(result) and all(math.isfinite(x) for x in losses(result))
    kto = [{"prompt": f"q{i}", "completion": f"answer {i}", "label": i % 2 == 0}
           for i in range(8)]
    result = run("sft", tmp_path / "kto", kto)
    stats = json.loads((result.output_dir / "data_stats.json").read_text())
    assert stats["unused"] == {UNDESIRABLE: 4} and stats["examples"] == 4


def test_grpo_on_message_list_prompts(tmp_path):
    rewards = write_rewards(tmp_path)
    rows = [{"prompt": [{"role": "system", "content": "Answer with digits."},
                        {"role": "user", "content": f"Write {n} as a digit."}], "answer": str(n)}
            for n in range(8)]
    result = run("grpo", tmp_path, rows, grpo={"reward_functions": [
        {"function": f"{rewards}:digit_share"}], "num_generations": 4, "max_new_tokens": 4})
    assert result.metrics
