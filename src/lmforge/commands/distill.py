"""lmforge distill: build an SFT dataset with a teacher (endpoint or local model), verified against
gold answers, resumable; prints a report and the ``data:`` block that trains on the output."""

from __future__ import annotations

HELP = "write an SFT dataset with a teacher model, verified against gold answers (resumable)"

MAX_SHOWN = 10


def add_arguments(parser) -> None:
    parser.add_argument("config", help="distill config YAML (top-level key distill:)")
    parser.set_defaults(_overrides=True)  # distill.key.path=value
    parser.add_argument("--dry-run", action="store_true",
                        help="check the config and the records, show the first prompt, send "
                        "nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.epilog = ("overrides: distill.key.path=value, e.g. "
                     "distill.teacher.base_url=http://127.0.0.1:8000/v1 distill.output=out.jsonl "
                     "(values are YAML scalars). Rerunning resumes: finished records are skipped. "
                     "Exit status: 0 all records finished, 1 some failed (rerun to retry them), "
                     "2 configuration error.")


def _progress_factory(console):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:.2f} rec/s" if task.speed else "-- rec/s", no_wrap=True)

    bar = Progress(TextColumn("distill"), BarColumn(), MofNCompleteColumn(), Rate(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                   TextColumn("{task.fields[status]}"), console=console, transient=False)

    def factory(total: int):
        task = bar.add_task("distill", total=total, status="")
        bar.start()

        def update(rep) -> None:
            bar.update(task, completed=rep.done + len(rep.failed),
                       status=f"kept {rep.kept} rejected {rep.rejected} failed {len(rep.failed)}")
        return update
    return bar, factory


def _print_report(rep, cfg, console) -> None:
    from lmforge.distill.records import data_block
    from lmforge.distill.store import side_paths

    console.print(f"[bold]{'interrupted' if rep.interrupted else 'done'}[/]: {rep.done} records "
                  f"finished (kept {rep.kept} samples, rejected {rep.rejected}), "
                  f"skipped {rep.skipped} already in the output, failed {len(rep.failed)}"
                  f" of {rep.total} in {rep.elapsed_s:.1f}s")
    if rep.repaired:
        console.print(f"  resume: removed the rows of {rep.repaired} unfinished records (redone)")
    if rep.rejections:
        console.print("  rejected: " + ", ".join(f"{k} x{v}" for k, v in rep.rejections.items()))
    if rep.retries:
        console.print("  retried: " + ", ".join(f"{k} x{v}" for k, v in rep.retries.items()))
    for item in rep.failed[:MAX_SHOWN]:
        console.print(f"  failed {item['id']} ({item['where']}): {item['reason']}",
                      markup=False, highlight=False)
    if len(rep.failed) > MAX_SHOWN:
        console.print(f"  ... and {len(rep.failed) - MAX_SHOWN} more (see the report file)")
    rejected, report, _ = side_paths(cfg.output)
    console.print(f"output: {cfg.output}  rejected: {rejected}  report: {report}",
                  markup=False, highlight=False)
    if rep.failed:
        console.print("rerun the same command to retry the failed records (finished ones are "
                      "skipped)")
    console.print("train on it with:\n" + data_block(cfg), markup=False, highlight=False, end="")


def _dry_run(cfg, console) -> int:
    import json

    from lmforge.distill.records import load_records
    from lmforge.distill.store import Store

    records = load_records(cfg)
    done, _ = Store(cfg.output).finished()
    pending = sum(r.key not in done for r in records)
    console.print(f"{len(records)} records, {pending} not yet in {cfg.output}; "
                  f"{pending * cfg.num_samples} requests to send")
    if records:
        console.print("first request messages:", json.dumps(list(records[0].messages), indent=2,
                      ensure_ascii=False), markup=False, highlight=False, soft_wrap=True)
    return 0


def run(args) -> int:
    from rich.console import Console

    from lmforge.config.distill import load_distill
    from lmforge.errors import ConfigError
    from lmforge.utils.logs import setup

    ov = args.overrides
    if ov.data or ov.model:
        raise ConfigError("--D./--M. overrides are for run configs; use distill.key.path=value")
    cfg = load_distill(args.config, ov.merged)
    setup()
    console = Console(soft_wrap=True)  # no wrapping: paths and the data: block stay copyable
    if args.dry_run:
        return _dry_run(cfg, console)
    if cfg.num_samples > 1 and cfg.generation.temperature == 0:
        console.print("[yellow]warning[/]: num_samples > 1 with temperature 0: the samples of a "
                      "record will usually be identical")
    from lmforge.distill import Report, distill

    bar, factory = (None, None) if args.no_progress else _progress_factory(Console(stderr=True))
    rep = Report()
    try:
        distill(cfg, progress=factory, report=rep)
    finally:
        if bar is not None:
            bar.stop()
        if rep.total or rep.interrupted:
            _print_report(rep, cfg, console)
    return 1 if rep.failed else 0
