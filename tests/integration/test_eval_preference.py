"""`lmforge eval RUN` on preference runs reports held-out reward accuracy and margin: the reward
model's scores for rm, the implicit reward against the base for dpo/kto (full and LoRA), and agrees
with what the trainer measured on the same eval split at the end of training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge import stages
from lmforge.cli import main
from tests.conftest import write_jsonl
from tests.integration.rl_toys import config, example, preference_data, preference_rows

TRAIN = {"max_steps": 12, "batch_size": 8, "save_steps": 12, "eval_steps": 12,
         "logging_steps": 4, "learning_rate": 5e-3}


def _eval(out, capsys, *extra) -> dict:
    assert main(["eval", str(out), *extra]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "reward_accuracy" in text and "reward_margin" in text
    return json.loads((Path(out) / "eval" / "eval_metrics.json").read_text())


@pytest.mark.parametrize("adapter", [{"type": "full"},
                                     {"type": "lora", "r": 4, "alpha": 8,
                                      "modules_to_save": ["lm_head"]}])
def test_dpo_run_reports_the_implicit_reward_against_its_base(tmp_path, capsys, adapter):
    cfg = config(example("dpo"), tmp_path, data=preference_data(tmp_path), train=TRAIN,
                 adapter=adapter)
    m = stages.run(cfg).metrics
    got = _eval(cfg.train.output_dir, capsys)
    assert got["stage"] == "dpo" and got["examples"] == 16 and got["unit"] == "pairs"
    assert got["reward_accuracy"] >= 0.9
    assert got["reward_margin"] > 0.2
    # the trainer measured the same quantity on the same pairs (its own tokenization)
    assert got["reward_margin"] == pytest.approx(m["eval_rewards/margins"], rel=0.25)
    assert got["chosen_reward"] - got["rejected_reward"] == pytest.approx(got["reward_margin"])
    rows = (tmp_path / "out" / "eval" / "rewards.jsonl").read_text().splitlines()
    assert len(rows) == 16 and "chosen_reward" in json.loads(rows[0])


def test_rm_run_scores_held_out_pairs_and_honours_overrides(tmp_path, capsys):
    cfg = config(example("rm"), tmp_path, data=preference_data(tmp_path), train=TRAIN)
    m = stages.run(cfg).metrics
    got = _eval(cfg.train.output_dir, capsys)
    assert got["stage"] == "rm" and got["examples"] == 16
    assert got["reward_accuracy"] == pytest.approx(m["eval_accuracy"], abs=1 / 16)
    assert got["reward_accuracy"] > 0.8 and got["reward_margin"] > 0
    # an override of a key evaluation reads is honoured ...
    few = write_jsonl(tmp_path / "few.jsonl", preference_rows(5, seed=3))
    assert _eval(cfg.train.output_dir, capsys, f"data.eval={few}")["examples"] == 5
    # ... and one it does not read, or that does not exist, is refused
    assert main(["eval", str(cfg.train.output_dir), "totally.bogus.key=1"]) == 2
    assert "totally.bogus.key: lmforge eval does not read it" in capsys.readouterr().err
    assert main(["eval", str(cfg.train.output_dir), "eval.bogus=1"]) == 2
    assert "eval.bogus: unknown key" in capsys.readouterr().err


def test_kto_run_on_unpaired_rows(tmp_path, capsys):
    from tests.conftest import REPO

    cfg = config(example("kto"), tmp_path, train=dict(TRAIN, max_steps=4))
    stages.run(cfg)
    held_out = _eval(cfg.train.output_dir, capsys)  # data.eval: 0.125 of the rows, as trained
    assert held_out["unit"] == "examples" and held_out["examples"] >= 2
    data = REPO / "examples/data/kto_train.jsonl"
    got = _eval(cfg.train.output_dir, capsys, "--data-file", str(data), "--max-samples", "6")
    assert got["unit"] == "examples" and got["examples"] == 6
    assert 0.0 <= got["reward_accuracy"] <= 1.0


def test_orpo_run_reports_the_implicit_reward_against_its_base(tmp_path, capsys):
    cfg = config(example("orpo"), tmp_path, data=preference_data(tmp_path, 16, 8),
                 train=dict(TRAIN, max_steps=4))
    stages.run(cfg)
    got = _eval(cfg.train.output_dir, capsys)
    assert got["stage"] == "orpo" and got["examples"] == 8
    assert "log p_policy − log p_reference" in got["reward"]
    assert got["chosen_reward"] - got["rejected_reward"] == pytest.approx(got["reward_margin"])
