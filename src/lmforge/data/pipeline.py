"""The only place that turns configured sources into tokenized datasets.

``build(cfg, tokenizer, template) -> BuiltData`` is what stages call: read every source (files,
a LLaMA-Factory registry, or a user class), convert rows to canonical examples, mix sources and
split off eval, encode (``encode.py``), run the pre-flight checks (``checks.py``) and cache the
result (``cache.py``). ``load_examples`` stops before tokenization (for stages that encode
differently); ``encoders.py`` encodes a split (``ENCODERS``: example type -> batch encoder).
A train split from one plain source is read chunk by chunk while the encoder tokenizes the
earlier chunks (``Streamed``); its errors, and the eval split's, come in the same order as when
everything is read first.
"""

from __future__ import annotations

import gc
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lmforge.config.run import RunConfig
from lmforge.data import cache, checks, mixing
from lmforge.data.encode import Settings
from lmforge.data.encoders import ENCODERS, encode_examples, to_dataset  # noqa: F401
from lmforge.data.plan import resolve
from lmforge.data.read import read_chunks, read_source  # noqa: F401 - read_source re-exported
from lmforge.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class BuiltData:
    """What a stage gets from the pipeline."""

    train: Any  # datasets.Dataset with input_ids, labels
    eval: Any | None  # same columns, or None when there is no eval data
    eval_examples: list | None  # canonical eval examples (for generation-based metrics)
    stats: dict = field(default_factory=dict)  # pre-flight statistics


@dataclass
class Splits:
    train: list  # or, from load_examples(stream=True), a Streamed source
    eval: list | None
    skipped: dict = field(default_factory=dict)  # split -> invalid rows skipped
    unused: dict = field(default_factory=dict)  # split -> {reason: rows the stage cannot use}
    read_eval: Any = None  # with a Streamed train: reads the eval split (after the train's)


class Streamed:
    """The train examples of one plain source (no mixing, no eval fraction), read chunk by chunk
    as the encoder asks for them, so reading overlaps tokenization. Errors are those of
    ``read_source`` then ``mixing.mix``, raised when reached; ``failed`` says one was raised."""

    def __init__(self, cfg: RunConfig, plan, counter: list[int], unused: dict):
        self.cfg, self.plan, self.counter, self.unused = cfg, plan, counter, unused
        self.failed = False

    def __iter__(self):
        total = 0
        try:
            for chunk in read_chunks(self.cfg, self.plan, self.counter, self.unused):
                total += len(chunk)
                yield chunk
            if not total:
                mixing.require_rows([[]], [self.plan])
        except BaseException:
            self.failed = True
            raise


def _keep_or_raise(exc: DataError, skip: bool, counter: list[int]) -> None:
    if not skip:
        raise exc
    counter[0] += 1


def _from_class(cfg: RunConfig) -> tuple[list, list, dict]:
    from lmforge.data.user_class import instantiate, load_split

    obj = instantiate(cfg.data.source, cfg.data.source_args)
    out, skipped = {}, {}
    for split in ("train", "eval"):
        counter, rows = [0], []
        for _, ex in load_split(obj, cfg.data.source, split, cfg.data.system):
            if isinstance(ex, DataError):
                _keep_or_raise(ex, cfg.data.skip_invalid, counter)
            else:
                rows.append(ex)
        out[split], skipped[split] = rows, counter[0]
    return out["train"], out["eval"], skipped


def _streams(cfg: RunConfig, plans: list) -> bool:
    """Whether the train split can be read while it is encoded: one plain source."""
    return (len(plans) == 1 and plans[0].weight is None and plans[0].samples is None
            and not isinstance(cfg.data.eval, float))


def load_examples(cfg: RunConfig, stream: bool = False) -> Splits:
    """Canonical train/eval examples: read, converted, mixed, eval split off (no tokenizer).
    ``stream``: a single plain train source comes as a ``Streamed`` (read as it is encoded),
    and the eval split is read by ``Splits.read_eval()`` (once the train split is read)."""
    data = cfg.data
    if data.format == "python":
        train, evals, skipped = _from_class(cfg)
        if isinstance(data.eval, float):
            [train], evals = mixing.split_eval([train], data.eval, data.seed)
        if not train:
            raise DataError(f"data.source: {data.source}.load('train') gave no examples")
        return Splits(train, evals or None, skipped)
    plans = resolve(cfg, "train")
    if not plans:
        raise ConfigError("data.train: required key is missing (a file, a list of files, or "
                          "registry names)")
    counters, unused = {"train": [0], "eval": [0]}, {"train": {}, "eval": {}}
    if stream and _streams(cfg, plans):
        splits = Splits(Streamed(cfg, plans[0], counters["train"], unused["train"]), None,
                        {}, unused)

        def read_eval():
            splits.eval = _read_eval(cfg, counters, unused)
            splits.skipped.update({k: v[0] for k, v in counters.items()})

        splits.read_eval = read_eval
        return splits
    parts = [read_source(cfg, p, counters["train"], unused["train"]) for p in plans]
    evals = None
    if isinstance(data.eval, float):
        parts, evals = mixing.split_eval(parts, data.eval, data.seed)
    train = mixing.mix(parts, plans, data.seed)
    evals = _read_eval(cfg, counters, unused) or evals
    return Splits(train, evals, {k: v[0] for k, v in counters.items()}, unused)


def _read_eval(cfg: RunConfig, counters: dict, unused: dict) -> list | None:
    eval_plans = resolve(cfg, "eval")
    if not eval_plans:
        return None
    eval_parts = [read_source(cfg, p, counters["eval"], unused["eval"]) for p in eval_plans]
    return mixing.mix(eval_parts, eval_plans, cfg.data.seed)


def stop_ids(template, tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id} - {None}
    if template:
        from lmforge.data.templates import end_of_turn_id

        ids.add(end_of_turn_id(template, tokenizer))
    return ids - {None}


def encode_split(cfg: RunConfig, examples, tokenizer, template, settings: Settings,
                 skipped: int | list[int], name: str, unused: dict | None = None):
    """``examples``: a list or a ``Streamed``; ``skipped``: rows skipped when read (or the
    counter a Streamed fills as it is read)."""
    columns, counts = encode_examples(examples, tokenizer, template, settings,
                                      cfg.data.skip_invalid, cfg.data.num_proc)
    skipped = skipped[0] if isinstance(skipped, list) else skipped
    ds = to_dataset(columns)
    stats = split_stats(cfg, ds, tokenizer, template, name)
    stats.update(counts, skipped_invalid=skipped + counts["skipped_invalid"])
    stats.update({"unused": unused} if unused else {})
    checks.enforce(stats, name)
    return ds, stats


def split_stats(cfg: RunConfig, data, tokenizer, template, name: str = "train") -> dict:
    """Token statistics of a split (a datasets.Dataset or its columns dict)."""
    names = data.column_names if hasattr(data, "column_names") else list(data)
    if "labels" not in names:
        return {"examples": len(data) if hasattr(data, "column_names") else
                len(next(iter(data.values()), []))}
    batch = cfg.train.per_device_eval_batch if name == "eval" else cfg.train.batch_size
    from lmforge.data import ragged

    read = (lambda k: ragged.from_dataset(data, k)) if hasattr(data, "column_names") else \
        (lambda k: ragged.from_lists(data[k]))
    (offsets, _), (label_offsets, labels) = read("input_ids"), read("labels")
    return checks.compute_ragged(offsets, label_offsets, labels, batch,
                                 stop_ids(template, tokenizer))


def _cache_parts(cfg: RunConfig, tokenizer, template, settings: Settings, examples=None) -> dict:
    data = cfg.data
    sources = {}
    if examples is None:
        for split in ("train", "eval"):
            sources[split] = [[p.path, p.format, p.columns, p.weight, p.samples,
                               cache.source_fingerprint(p.path)] for p in resolve(cfg, split)]
    else:  # user classes load their own files: fingerprint what they produced
        sources = {k: [e.to_dict() for e in v or []] for k, v in examples.items()}
    return {"sources": sources, "format": data.format, "columns": data.columns,
            "system": data.system, "txt_split": data.txt_split, "eval": data.eval if isinstance(data.eval, float) else None,
            "seed": data.seed, "skip_invalid": data.skip_invalid, "stage": cfg.stage,
            "train_on_tool_results": data.train_on_tool_results,
            "settings": settings.__dict__, "template": template,
            "tokenizer": cache.tokenizer_fingerprint(tokenizer), "code": cache.code_fingerprint()}


@contextmanager
def paused_gc():
    """The cyclic garbage collector paused while a split is read and encoded: the millions of
    small lists and tuples made there (rows, token ids, offsets) hold no cycles, yet each of
    them counts towards collections that walk them all (measured: ~18 % of the CPU time of the
    preprocessing benchmark)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def build(cfg: RunConfig, tokenizer, template: str | None) -> BuiltData:
    """Read, convert, encode and check the configured train/eval data (cached)."""
    settings = Settings.from_config(cfg)
    if template is not None and cfg.data.format != "text":
        from lmforge.data.templates import check_template

        check_template(template, tokenizer)
    splits = None
    if cfg.data.format == "python":  # user classes load their own files: hash what they gave
        splits = load_examples(cfg)
        parts = _cache_parts(cfg, tokenizer, template, settings,
                             {"train": splits.train, "eval": splits.eval})
    else:
        parts = _cache_parts(cfg, tokenizer, template, settings)
    key = cache.key(parts)  # also the data fingerprint of the run
    if cfg.data.cache:
        hit = cache.load(cache.cache_dir(cfg), key)
        if hit is not None:
            return _from_cache(cfg, hit, tokenizer, template, key)
    with paused_gc():
        splits = splits or load_examples(cfg, stream=True)
        built = _encode(cfg, splits, tokenizer, template, settings)
    built.stats.update(cache_hit=False, fingerprint=key)
    if cfg.data.cache:
        cache.save(cache.cache_dir(cfg), key, built.train, built.eval, built.eval_examples,
                   built.stats)
    return built


def _encode(cfg, splits: Splits, tokenizer, template, settings) -> BuiltData:
    streamed = splits.train if isinstance(splits.train, Streamed) else None
    try:
        train, stats = encode_split(cfg, splits.train, tokenizer, template, settings,
                                    streamed.counter if streamed else
                                    splits.skipped.get("train", 0), "train",
                                    splits.unused.get("train"))
    except Exception:  # the train split is read: its eval's read errors come first, as before
        if streamed and not streamed.failed:
            splits.read_eval()
        raise
    if streamed:
        splits.read_eval()
    eval_ds = None
    if splits.eval:
        eval_ds, stats["eval"] = encode_split(cfg, splits.eval, tokenizer, template, settings,
                                              splits.skipped.get("eval", 0), "eval",
                                              splits.unused.get("eval"))
    stats.update(_token_facts(tokenizer, template))
    log.info("train data: %s", checks.summary(stats))
    return BuiltData(train, eval_ds, splits.eval, stats)


def _token_facts(tokenizer, template) -> dict:
    facts = {"pad_equals_eos": tokenizer.pad_token_id is not None
             and tokenizer.pad_token_id == tokenizer.eos_token_id}
    if template:
        from lmforge.data.templates import end_of_turn_text

        facts["end_of_turn"] = end_of_turn_text(template, tokenizer)
    return facts


_COUNTS = ("zero_trained", "truncated", "dropped", "skipped_invalid", "split_documents", "unused")


def _from_cache(cfg, hit, tokenizer, template, key: str) -> BuiltData:
    """Cached datasets; token statistics recomputed (cheap; batch sizes may have changed)."""
    train, evals, eval_examples, cached = hit
    stats = dict(cached)
    stats.update(split_stats(cfg, train, tokenizer, template))
    stats.update({k: cached[k] for k in _COUNTS if k in cached})
    if evals is not None:
        stats["eval"] = split_stats(cfg, evals, tokenizer, template, "eval") | {
            k: cached["eval"][k] for k in _COUNTS if k in (cached.get("eval") or {})}
    stats.update(cache_hit=True, fingerprint=key)
    log.info("data cache hit (%s): reading and tokenization skipped", key)
    log.info("train data: %s", checks.summary(stats))
    return BuiltData(train, evals, eval_examples, stats)
