"""Metrics aggregated over evaluation batches are exact over the examples (issue 18, item 12).

A reward model whose per-pair correctness on 12 evaluation pairs is known (scored here one pair at
a time): 7 of the first 8 pairs right, 2 of the last 4. With eval batches of 8 and 4, trl's mean
of per-batch means is (7/8 + 2/4) / 2 = 0.6875; the accuracy over the pairs is 9/12 = 0.75.
"""

from __future__ import annotations

import pytest
import torch

from lmforge import stages
from tests.conftest import write_jsonl
from tests.integration.rl_toys import config, example, preference_rows


def _seq_cls_model(tiny_model_dir, out):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _pair_ids(cfg):
    """(chosen ids, rejected ids) per evaluation pair, as stage rm tokenizes them."""
    from lmforge.data.preference_build import rm_dataset
    from lmforge.data.preference_data import load_records
    from lmforge.training.context import start

    ctx = start(cfg)
    tokenizer = ctx.tokenizer
    _, evals, _ = load_records(cfg, tokenizer, ctx.template, "pair")
    ds = rm_dataset(evals, tokenizer, cfg.data.max_length, cfg.data.truncation, None)[0]
    return list(zip(ds["chosen_ids"], ds["rejected_ids"]))


@torch.no_grad()
def _margins(model_dir, pairs) -> list[float]:
    """score(chosen) - score(rejected) of each pair, every sequence scored alone (no padding)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()

    def score(ids):
        return model(input_ids=torch.tensor([ids])).logits[0, 0].item()

    return [score(c) - score(r) for c, r in pairs]


def test_reward_model_eval_accuracy_is_exact_over_pairs_with_unequal_batches(
        tiny_model_dir, tmp_path):
    base = _seq_cls_model(tiny_model_dir, tmp_path / "rm-base")
    train = write_jsonl(tmp_path / "train.jsonl", preference_rows(8, seed=1))
    candidates = preference_rows(40, seed=5)
    probe = write_jsonl(tmp_path / "candidates.jsonl", candidates)

    def cfg_for(evals, out):
        return config(example("rm"), tmp_path, model={"path": str(base)},
                      data={"train": str(train), "eval": str(evals)},
                      train={"output_dir": str(out), "max_steps": 1, "batch_size": 4,
                             "eval_batch_size": 8, "save_steps": 1, "eval_steps": 1,
                             "logging_steps": 1, "report_to": ["none"]})

    margins = _margins(base, _pair_ids(cfg_for(probe, tmp_path / "probe")))
    clear = [i for i, m in enumerate(margins) if abs(m) > 1e-3]
    right = [candidates[i] for i in clear if margins[i] > 0]
    wrong = [candidates[i] for i in clear if margins[i] < 0]
    swapped = [dict(r, chosen=r["rejected"], rejected=r["chosen"]) for r in right]
    wrong += swapped[len(right) // 2:]  # a pair the model gets right, turned around
    right = right[:len(right) // 2]
    assert len(right) >= 9 and len(wrong) >= 3, margins
    rows = right[:7] + wrong[:1] + right[7:9] + wrong[1:3]  # batch of 8: 7/8; of 4: 2/4
    evals = write_jsonl(tmp_path / "eval.jsonl", rows)
    ids = _pair_ids(cfg_for(evals, tmp_path / "probe-eval"))
    assert [m > 0 for m in _margins(base, ids)] == [True] * 7 + [False] + [True] * 2 + [False] * 2
    cfg = cfg_for(evals, tmp_path / "run")

    result = stages.run(cfg)
    assert result.metrics["eval_accuracy_start"] == pytest.approx(0.75, abs=1e-12)
    assert result.log_history[0]["eval_accuracy"] == pytest.approx(0.75, abs=1e-12)
    # after the training step: the accuracy of the saved model, pair by pair
    after = _margins(result.output_dir, ids)
    assert result.metrics["eval_accuracy"] == pytest.approx(
        sum(m > 0 for m in after) / 12, abs=1e-12)
    assert result.metrics["eval_margin"] == pytest.approx(sum(after) / 12, abs=1e-4)
