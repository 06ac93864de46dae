"""Pairwise metrics exact over the pairs, not means of per-batch means.

trl's RewardTrainer and DPOTrainer append one value per batch (the batch's mean accuracy, margin,
reward, ...) to ``trainer._metrics[mode][name]`` and log the plain mean of that list: with batches
of 8 and 4 pairs the 4 pairs weigh as much as the 8 (9/12 correct pairs logged as 0.6875, not
0.75). ``exact(cls)`` puts a mixin on top of such a trainer class: ``compute_loss`` (a public
hook) records how many pairs each appended value averages over, and ``log`` (public) replaces
each per-pair list by its pair-weighted mean (``min_*``/``max_*`` by the min/max over the
batches) before trl averages it, so what trl logs is the mean over every pair.

Weighted: the per-pair means (RM: accuracy, margin, mean_reward; DPO: rewards/*, logps/*).
Left as trl computes them: per-token means of a batch (DPO's logits/*, entropy,
mean_token_accuracy: token-weighted by design, averaged per batch) and running totals
(num_tokens). ``eval_loss`` is exact already (transformers weights each batch's loss by its size).
KTO (per-batch means over the batch's chosen or rejected examples) and ORPO (its own
``store_metrics``) are not changed.

``trainer._metrics`` is trl's (private) attribute: ``metric_lists`` is the one place that reads
it, and tests/integration/test_exact_metrics.py fails if its shape changes.
"""

from __future__ import annotations

import functools

PER_PAIR_NAMES = frozenset({"accuracy", "margin", "mean_reward"})  # RewardTrainer
PER_PAIR_PREFIXES = ("rewards/", "logps/")  # DPOTrainer


def _per_pair(name: str) -> bool:
    return name in PER_PAIR_NAMES or name.startswith(PER_PAIR_PREFIXES)


def metric_lists(trainer, mode: str) -> dict[str, list]:
    """trl's per-batch metric values of ``mode`` ('train' or 'eval'), or {} if it has none."""
    store = getattr(trainer, "_metrics", None)
    if not isinstance(store, dict) or mode not in store:
        return {}
    return store[mode]


def pairs_in(inputs) -> int:
    """Pairs in a batch of trl's reward/DPO collators: chosen rows, then rejected rows."""
    ids = inputs.get("input_ids") if hasattr(inputs, "get") else None
    return int(ids.shape[0]) // 2 if ids is not None and hasattr(ids, "shape") else 0


class ExactPairMetricsMixin:
    """See the module docstring. Mixed in above a trl trainer with ``_metrics``."""

    def _lmforge_pair_weights(self) -> dict:
        if not hasattr(self, "_lmforge_weights"):
            self._lmforge_weights = {"train": {}, "eval": {}}
        return self._lmforge_weights

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        store = metric_lists(self, mode)
        before = {k: len(v) for k, v in store.items()}
        pairs = pairs_in(inputs)
        out = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                   num_items_in_batch=num_items_in_batch)
        if self.args.world_size > 1:  # trl's values are over every process's pairs
            import torch

            count = torch.tensor(pairs, device=self.args.device)
            pairs = int(self.accelerator.reduce(count, reduction="sum").item())
        weights = self._lmforge_pair_weights()[mode]
        for name, values in store.items():
            if len(values) == before.get(name, 0) + 1:
                weights.setdefault(name, []).append(pairs)
            else:  # not one value per batch (a running total): not ours to weigh
                weights.pop(name, None)
        return out

    def log(self, logs: dict, start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        weights = self._lmforge_pair_weights()[mode]
        for name, values in metric_lists(self, mode).items():
            w = weights.get(name, [])
            if not values:
                continue
            if name.startswith("min_"):
                values[:] = [min(values)]
            elif name.startswith("max_"):
                values[:] = [max(values)]
            elif _per_pair(name) and len(w) == len(values) and sum(w) > 0:
                values[:] = [sum(wi * v for wi, v in zip(w, values)) / sum(w)]
        weights.clear()
        super().log(logs, start_time)


@functools.cache
def exact(cls):
    """``cls`` (a trl trainer class) with pair-exact logged metrics; one class per ``cls``."""
    return type(cls.__name__, (ExactPairMetricsMixin, cls), {"__module__": __name__})
