"""Data for the preference and RL stages: canonical examples from the data pipeline (sources,
mixing, eval split, registry), rendered with the run's chat template, with pre-flight
statistics per split."""

from __future__ import annotations

import logging

from lmforge.config.run import RunConfig

log = logging.getLogger(__name__)


def _render_all(cfg: RunConfig, examples: list, render, allowed: tuple, formats: str) -> list:
    from lmforge.data.render import TemplateRenderError
    from lmforge.data.sources import bad_row
    from lmforge.errors import ConfigError

    out = []
    for ex in examples:
        if not isinstance(ex, allowed):
            raise ConfigError(f"data.format: stage {cfg.stage} reads {formats} data, not "
                              f"{type(ex).__name__} rows (format '{cfg.data.format}')")
        try:
            got = render(ex)
        except TemplateRenderError as exc:
            raise bad_row(ex.where or "row", str(exc)) from None
        out += got if isinstance(got, list) else [got]
    return out


def load_examples(cfg: RunConfig, render, allowed: tuple, formats: str):
    """(train, eval) canonical examples from the data pipeline (sources, mixing, eval split),
    each rendered with ``render`` (which may return one record or a list)."""
    from lmforge.data import pipeline

    splits = pipeline.load_examples(cfg)
    for split, n in splits.skipped.items():
        if n:
            log.warning("%s: skipped %d invalid rows (data.skip_invalid: true)", split, n)
    train = _render_all(cfg, splits.train, render, allowed, formats)
    evals = _render_all(cfg, splits.eval, render, allowed, formats) if splits.eval else None
    return train, evals


def load_records(cfg: RunConfig, tokenizer, template: str, kind: str):
    """(train, eval, stats): rendered Pair (kind 'pair') or Unpaired records, with pre-flight
    statistics per split."""
    from lmforge.data import preference as p
    from lmforge.data.preference_build import pair_stats, unpaired_stats
    from lmforge.data.preference_fit import added_tokens, fit_records, settings_for
    from lmforge.errors import DataError

    if kind == "pair":
        train, evals = load_examples(cfg, lambda ex: p.render_pair(ex, template, tokenizer),
                                     (p.PreferenceExample,), "preference")
    else:
        train, evals = load_examples(cfg, lambda ex: p.render_unpaired(ex, template, tokenizer),
                                     (p.PreferenceExample, p.KTOExample), "kto or preference")
    # data.truncation with its SFT meaning; trl adds special tokens of its own (rm: ids as given)
    settings = settings_for(cfg, 0 if cfg.stage == "rm" else added_tokens(tokenizer))
    train, fitted = fit_records(train, tokenizer, settings)
    if not train:
        raise DataError(f"no training example fits in data.max_length={cfg.data.max_length} "
                        f"(data.truncation: {cfg.data.truncation})",
                        hint="raise data.max_length, or use data.truncation: truncate_prompt")
    check = pair_stats if kind == "pair" else unpaired_stats
    stats = {"train": dict(check(train, tokenizer, cfg.data.max_length), **fitted)}
    if evals:
        evals, fitted = fit_records(evals, tokenizer, settings)
        stats["eval"] = dict(check(evals, tokenizer, cfg.data.max_length), **fitted)
    log.info("data: %s", stats)
    return train, evals or None, stats
