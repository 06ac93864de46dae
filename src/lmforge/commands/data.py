"""lmforge data preview: the encoded training data as the model sees it, trained spans marked,
plus the pre-flight statistics (``--json`` for machines)."""

from __future__ import annotations

import argparse

from lmforge.commands._runargs import add_run_arguments, load_run

HELP = "inspect the training data: encoded examples with trained spans marked, and statistics"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("preview", help="show n encoded examples and the data statistics",
                       description="show n encoded examples (trained spans highlighted, or "
                       "between ⟦ ⟧ when not on a terminal) and the data statistics")
    add_run_arguments(p)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show tracebacks on errors")
    p.add_argument("-n", type=int, default=3, help="examples to show (default 3)")
    p.add_argument("--split", choices=("train", "eval"), default="train",
                   help="which split to show (default train)")
    p.add_argument("--json", action="store_true", help="print only the statistics, as JSON")


def _logging() -> None:
    import logging

    from rich.console import Console
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True,
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)])
    for noisy in ("datasets", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build(cfg):
    from lmforge.data import pipeline
    from lmforge.data.templates import resolve_template
    from lmforge.model.loader import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    template = None if cfg.stage == "pt" else resolve_template(cfg.model.template, tokenizer,
                                                                 cfg.data.template_system)
    return tokenizer, pipeline.build(cfg, tokenizer, template)


def _show(console, tokenizer, ds, n: int, fancy: bool) -> None:
    from lmforge.config.constants import IGNORE_INDEX
    from lmforge.data.preview import marked_text, rich_text

    for i in range(min(n, len(ds))):
        ids, labels = ds[i]["input_ids"], ds[i]["labels"]
        trained = sum(1 for x in labels if x != IGNORE_INDEX)
        head = f"── example {i + 1}: {len(ids)} tokens, {trained} trained "
        if fancy:
            console.rule(head, align="left")
            console.print(rich_text(tokenizer, ids, labels))
        else:
            print(head + "─" * 10)
            print(marked_text(tokenizer, ids, labels))


def _stats(console, stats: dict, fancy: bool) -> None:
    from lmforge.data.preview import histogram_lines, stats_rows

    rows = stats_rows(stats)
    if fancy:
        from rich.table import Table

        table = Table(title="data statistics", show_header=False)
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
    else:
        print("── data statistics")
        for key, value in rows:
            print(f"{key}: {value}")
    print("length histogram (tokens):")
    print("\n".join(histogram_lines(stats.get("length_histogram", []))))


PAIR_STAGES = ("rm", "dpo", "orpo", "kto")


def _show_records(records: list, n: int) -> None:
    """Preference/KTO records as trl sees them: the prompt (not trained), then each answer with
    its trained text between ⟦ ⟧ (the end-of-turn token included)."""
    from lmforge.data.preference_build import identical_where
    from lmforge.data.preview import CLOSE, OPEN

    for i, r in enumerate(records[:n]):
        print(f"── example {i + 1} ({r.where}) " + "─" * 10)
        print(r.prompt, end="")
        if hasattr(r, "chosen"):
            same = "   ⚠ chosen == rejected: no preference to learn" if r.chosen == r.rejected \
                else ""
            print(f"{OPEN}{r.chosen}{CLOSE}\n── rejected:{same}\n{r.prompt}{OPEN}{r.rejected}"
                  f"{CLOSE}")
        else:
            print(f"{OPEN}{r.completion}{CLOSE}\n── label: "
                  f"{'desirable' if r.label else 'undesirable'}")
    if any(hasattr(r, "chosen") and r.chosen == r.rejected for r in records):
        print(f"warning: pairs with chosen == rejected (no signal): {identical_where(records)}")


def _preview_pairs(args, cfg) -> int:
    """data preview for rm/dpo/orpo/kto: the rendered records and their pre-flight statistics."""
    import json

    from lmforge.data.preference_data import load_records
    from lmforge.data.templates import resolve_template
    from lmforge.model.loader import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    template = resolve_template(cfg.model.template, tokenizer, cfg.data.template_system)
    kind = "unpaired" if cfg.stage == "kto" else "pair"
    train, evals, stats = load_records(cfg, tokenizer, template, kind)
    records, split_stats = (train, stats["train"]) if args.split == "train" else (
        evals, stats.get("eval"))
    if records is None:
        from lmforge.errors import ConfigError

        raise ConfigError("data.eval: this run has no eval data to preview")
    if args.json:
        print(json.dumps(split_stats, indent=2, ensure_ascii=False))
        return 0
    _show_records(records, args.n)
    print("── data statistics")
    for key, value in split_stats.items():
        print(f"{key}: {value}")
    return 0


def run(args) -> int:
    import json

    _logging()
    cfg = load_run(args)
    if cfg.stage in PAIR_STAGES:
        return _preview_pairs(args, cfg)
    tokenizer, data = build(cfg)
    ds = data.train if args.split == "train" else data.eval
    stats = data.stats if args.split == "train" else data.stats.get("eval")
    if ds is None or stats is None:
        from lmforge.errors import ConfigError

        raise ConfigError("data.eval: this run has no eval data to preview")
    if args.json:
        print(json.dumps(stats | ({"cache_hit": data.stats.get("cache_hit")}), indent=2,
                         ensure_ascii=False))
        return 0
    from rich.console import Console

    console = Console()
    fancy = console.is_terminal
    _show(console, tokenizer, ds, args.n, fancy)
    _stats(console, stats, fancy)
    return 0
