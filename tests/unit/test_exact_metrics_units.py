"""The pair-weighting mixin on a stand-in with trl's metric bookkeeping (one mean per batch in
``_metrics[mode][name]``, logged as the plain mean of the list): DPO's per-pair names become
pair-weighted, min/max become the min/max, token-level names and running totals stay trl's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lmforge.training.exact_metrics import exact


class TrlLike:
    def __init__(self):
        self.model = torch.nn.Linear(1, 1).eval()
        self.args = SimpleNamespace(world_size=1)
        self._metrics = {"train": {}, "eval": {}}
        self.logged = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        correct, tokens = inputs["correct"], inputs["token_acc"]
        m = self._metrics["eval"]
        m.setdefault("rewards/accuracies", []).append(sum(correct) / len(correct))
        m.setdefault("min_reward", []).append(min(correct))
        m.setdefault("entropy", []).append(tokens)
        m["num_tokens"] = [7]
        return torch.tensor(0.0)

    def log(self, logs, start_time=None):
        logs.update({f"eval_{k}": sum(v) / len(v) for k, v in self._metrics["eval"].items()})
        self.logged.append(logs)
        self._metrics["eval"] = {}


def test_per_pair_metrics_are_weighted_by_pairs():
    trainer = exact(TrlLike)()
    for correct, token_acc in (([1] * 7 + [0], 0.5), ([1, 1, 0, 0], 0.9)):
        inputs = {"input_ids": torch.zeros(2 * len(correct), 3), "correct": correct,
                  "token_acc": token_acc}
        trainer.compute_loss(trainer.model, inputs)
    trainer.log({})
    logged = trainer.logged[-1]
    assert logged["eval_rewards/accuracies"] == pytest.approx(9 / 12)
    assert logged["eval_min_reward"] == 0
    assert logged["eval_entropy"] == pytest.approx(0.7)  # per-batch token mean: trl's as it is
    assert logged["eval_num_tokens"] == 7
    assert exact(TrlLike) is exact(TrlLike)
