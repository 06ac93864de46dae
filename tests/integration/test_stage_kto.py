"""Stage kto: unpaired desirable/undesirable answers (or preference pairs split in two) move the
policy's implied rewards apart."""

from __future__ import annotations

from lmforge import stages
from tests.conftest import write_jsonl
from tests.integration.rl_toys import config, example, first_last, preference_rows


def test_kto_separates_desirable_from_undesirable(tmp_path):
    rows = []
    for r in preference_rows(32, seed=5):
        rows += [{"prompt": r["prompt"], "completion": r["chosen"], "label": True},
                 {"prompt": r["prompt"], "completion": r["rejected"], "label": "false"}]
    data = {"train": str(write_jsonl(tmp_path / "kto.jsonl", rows)), "eval": 0.25,
            "format": "kto", "max_length": 64}
    cfg = config(example("kto"), tmp_path, data=data,
                 train={"max_steps": 10, "batch_size": 8, "save_steps": 10, "eval_steps": 10,
                        "logging_steps": 1, "learning_rate": 5e-3})
    result = stages.run(cfg)
    m = result.metrics
    assert m["data_train_desirable"] + m["data_train_undesirable"] == m["train_examples"]
    assert m["eval_rewards/margins"] > m["eval_rewards/margins_start"] + 0.02, m
    first, last = first_last(result.log_history, "rewards/margins")
    assert last > first
    assert (result.output_dir / "margins.png").is_file()


def test_kto_reads_preference_pairs_as_two_unpaired_examples(tmp_path):
    from lmforge.model.loader import load_tokenizer
    from lmforge.data.preference_data import load_records

    path = write_jsonl(tmp_path / "pairs.jsonl", preference_rows(4, seed=6))
    cfg = config(example("kto"), tmp_path, data={"train": str(path), "eval": None,
                                                  "format": "preference"})
    tok = load_tokenizer(cfg.model)
    train, evals, stats = load_records(cfg, tok, tok.chat_template, "unpaired")
    assert len(train) == 8 and evals is None
    assert [r.label for r in train[:2]] == [True, False]
    assert train[0].prompt == train[1].prompt and train[0].completion.endswith("<|im_end|>")
    assert stats["train"]["desirable"] == 4
