"""The only place that turns configured sources into tokenized datasets (``datasets.map``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from lmforge.config.run import RunConfig
from lmforge.data.encode import IGNORE, encode_conversation
from lmforge.data.formats import CONVERTERS
from lmforge.data.sources import read_rows
from lmforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _paths(spec) -> list[str]:
    if spec is None:
        return []
    items = spec if isinstance(spec, list) else [spec]
    return [i if isinstance(i, str) else i.path for i in items]


def load_examples(cfg: RunConfig, spec) -> list:
    """Read and convert every row; invalid rows raise, or are counted and dropped if asked."""
    convert = CONVERTERS.get(cfg.data.format)
    if convert is None:
        raise ConfigError(f"data.format: '{cfg.data.format}' is not supported by stage "
                          f"'{cfg.stage}'")
    examples, skipped = [], 0
    for path in _paths(spec):
        for where, row in read_rows(path):
            try:
                examples.append(convert(row, cfg.data.columns, where, cfg.data.system))
            except DataError:
                if not cfg.data.skip_invalid:
                    raise
                skipped += 1
    if skipped:
        log.warning("skipped %d invalid rows (data.skip_invalid: true)", skipped)
    return examples


def encode_all(cfg: RunConfig, examples: list, tokenizer, template: str):
    """Encode conversations; returns a datasets.Dataset with input_ids and labels."""
    import datasets

    rows, dropped = {"input_ids": [], "labels": []}, 0
    for ex in examples:
        enc = encode_conversation(ex, tokenizer, template, cfg.data.train_on)
        if len(enc.input_ids) > cfg.data.max_length:
            if cfg.data.truncation == "drop":
                dropped += 1
                continue
            enc.input_ids = enc.input_ids[: cfg.data.max_length]
            enc.labels = enc.labels[: cfg.data.max_length]
        rows["input_ids"].append(enc.input_ids)
        rows["labels"].append(enc.labels)
    if dropped:
        log.warning("dropped %d over-long examples (data.truncation: drop)", dropped)
    trained = sum(sum(1 for x in lab if x != IGNORE) for lab in rows["labels"])
    if rows["labels"] and trained == 0:
        raise DataError("no example has any trained token: every response was masked or "
                        "truncated away", hint="raise data.max_length or check model.template")
    return datasets.Dataset.from_dict(rows)


@dataclass
class BuiltData:
    """What a stage gets from the pipeline."""

    train: Any  # datasets.Dataset with input_ids, labels
    eval: Any | None  # same columns, or None when there is no eval data
    eval_examples: list | None  # canonical eval examples (for generation-based metrics)
    stats: dict = field(default_factory=dict)  # pre-flight statistics


def build(cfg: RunConfig, tokenizer, template: str) -> BuiltData:
    """Read, convert, encode the configured train/eval data."""
    if cfg.data.train is None:
        raise ConfigError("data.train: required key is missing")
    train = load_examples(cfg, cfg.data.train)
    if not train:
        raise DataError("no training examples", str(_paths(cfg.data.train)))
    evals = None
    if isinstance(cfg.data.eval, float):
        import random

        rng = random.Random(cfg.data.seed)
        order = list(range(len(train)))
        rng.shuffle(order)
        n_eval = max(1, int(len(train) * cfg.data.eval))
        evals = [train[i] for i in order[:n_eval]]
        train = [train[i] for i in order[n_eval:]]
    elif cfg.data.eval is not None:
        evals = load_examples(cfg, cfg.data.eval)
    train_ds = encode_all(cfg, train, tokenizer, template)
    eval_ds = encode_all(cfg, evals, tokenizer, template) if evals else None
    return BuiltData(train_ds, eval_ds, evals)
