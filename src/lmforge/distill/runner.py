"""Run a distillation: bounded concurrency over records, verification, resume, report.

``concurrency`` record workers share one semaphore of ``concurrency`` request slots, so at most
that many requests are in flight. A record is written (all its rows at once) only when every one
of its samples is back; a record whose request failed after retries writes nothing and is
retried by the next run.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from lmforge.config.distill import DistillConfig
from lmforge.distill.records import Record, load_records, output_row
from lmforge.distill.store import Store
from lmforge.distill.teachers import Sample, TeacherFailed
from lmforge.distill.verify import Verdict, judge


@dataclass
class Report:
    total: int = 0  # input records
    skipped: int = 0  # finished by an earlier run
    done: int = 0  # finished now
    kept: int = 0  # samples written to the output
    rejected: int = 0  # samples written to the rejected file
    failed: list[dict] = field(default_factory=list)  # {id, where, reason}
    rejections: dict[str, int] = field(default_factory=dict)  # reason kind -> count
    retries: dict[str, int] = field(default_factory=dict)  # retried error kind -> count
    repaired: int = 0  # unfinished records removed from the files on resume
    interrupted: bool = False
    elapsed_s: float = 0.0
    output: str = ""
    rejected_file: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)


KINDS = ("answer", "no answer", "no majority", "majority", "empty response", "truncated",
         "not needed")


def _kind(reason: str) -> str:
    """A reason without its specifics, for counting ("answer '3' != gold 4" -> 'answer')."""
    return next((k for k in KINDS if reason.startswith(k)), reason.split(":")[0])


class Distiller:
    def __init__(self, cfg: DistillConfig, teacher, store: Store, report: Report, progress=None):
        self.cfg, self.teacher, self.store, self.report = cfg, teacher, store, report
        self.progress = progress
        self._slots = asyncio.Semaphore(cfg.concurrency)
        self._rejections: Counter = Counter()

    async def _sample(self, rec: Record, index: int) -> Sample:
        async with self._slots:
            return await self.teacher.complete(rec.messages, index)

    def _verdicts(self, rec: Record, samples: list[Sample]) -> list[Verdict]:
        v = self.cfg.verify
        gold = rec.data.get(v.gold_field) if v and v.mode == "gold" else None
        verdicts = judge([s.answer_text for s in samples], v, gold)
        out, kept_one = [], False
        for s, verdict in zip(samples, verdicts):
            if not s.text.strip():
                verdict = Verdict(False, verdict.answer, "empty response")
            elif s.finish_reason == "length" and self.cfg.drop_truncated:
                verdict = Verdict(False, verdict.answer, "truncated: the response hit "
                                  "generation.max_new_tokens")
            elif verdict.keep and kept_one and self.cfg.keep == "first":
                verdict = Verdict(False, verdict.answer, "not needed: verified, but keep: first")
            kept_one = kept_one or verdict.keep
            out.append(verdict)
        return out

    async def record(self, rec: Record) -> None:
        results = await asyncio.gather(*(self._sample(rec, i)
                                         for i in range(self.cfg.num_samples)),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, TeacherFailed):
                raise r
        errors = [r for r in results if isinstance(r, TeacherFailed)]
        if errors:
            self.report.failed.append({"id": rec.key, "where": rec.where,
                                       "reason": errors[0].reason})
            return
        self._write(rec, results, self._verdicts(rec, results))

    def _write(self, rec: Record, samples: list[Sample], verdicts: list[Verdict]) -> None:
        n_kept = sum(v.keep for v in verdicts)
        kept, rejected = [], []
        v = self.cfg.verify
        for i, (s, verdict) in enumerate(zip(samples, verdicts)):
            meta = {"id": rec.key, "sample": i, "kept": n_kept,
                    "rejected": len(verdicts) - n_kept, "answer": verdict.answer,
                    "teacher": self.teacher.name}
            if verdict.keep:
                kept.append(output_row(self.cfg, rec, s.text, meta))
            else:
                row = {"distill": meta, "reason": verdict.reason, "response": s.text}
                if v is not None and v.mode == "gold":
                    row["gold"] = rec.data.get(v.gold_field)
                row["origin"] = rec.data
                rejected.append(row)
                self._rejections[_kind(verdict.reason)] += 1
        self.store.write(kept, rejected)
        self.report.done += 1
        self.report.kept += len(kept)
        self.report.rejected += len(rejected)
        self.report.rejections = dict(self._rejections)

    async def run(self, pending: list[Record]) -> None:
        todo = iter(pending)

        async def worker():
            for rec in todo:  # one shared iterator: each record is taken by one worker
                await self.record(rec)
                if self.progress is not None:
                    self.progress(self.report)

        tasks = [asyncio.create_task(worker())
                 for _ in range(min(self.cfg.concurrency, len(pending)))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def make_teacher(cfg: DistillConfig):
    if cfg.teacher.local is not None:
        from lmforge.distill.local import LocalTeacher

        return LocalTeacher(cfg)
    from lmforge.distill.teachers import HttpTeacher

    return HttpTeacher(cfg)


def _catch_ctrl_c(report: Report) -> None:
    """Ctrl-C cancels the run and marks the report interrupted. asyncio.run's own translation of
    SIGINT into KeyboardInterrupt depends on the cancellation reaching it unswallowed; here the
    flag decides (distill() raises KeyboardInterrupt after the loop whenever it is set)."""
    loop, main = asyncio.get_running_loop(), asyncio.current_task()

    def stop() -> None:
        report.interrupted = True
        main.cancel()

    try:
        loop.add_signal_handler(signal.SIGINT, stop)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        pass


async def _main(cfg, teacher, store, report, pending, progress):
    if not pending:  # nothing to do: do not even load a local teacher
        return
    _catch_ctrl_c(report)
    async with teacher:
        await Distiller(cfg, teacher, store, report, progress).run(pending)


def distill(cfg: DistillConfig, teacher=None, progress=None,
            report: Report | None = None) -> Report:
    """Run (or resume) a distillation, filling ``report`` (also written to <stem>.report.json).

    ``progress``: called with the number of pending records; returns a callback that gets the
    report after each record. ``teacher``: an object with ``name``, ``complete(messages, i)``
    and async-context methods (default: from the config).
    """
    start = time.perf_counter()
    records = load_records(cfg)
    teacher = teacher if teacher is not None else make_teacher(cfg)
    store = Store(cfg.output)
    report = report if report is not None else Report()
    report.total, report.output, report.rejected_file = (len(records), str(store.output),
                                                         str(store.rejected))
    done = store.open()
    try:
        report.repaired = store.dropped
        pending = [r for r in records if r.key not in done]
        report.skipped = len(records) - len(pending)
        if progress is not None:
            progress = progress(len(pending))
        try:
            asyncio.run(_main(cfg, teacher, store, report, pending, progress))
        except asyncio.CancelledError:
            if not report.interrupted:
                raise
        if report.interrupted:
            raise KeyboardInterrupt
    except (KeyboardInterrupt, asyncio.CancelledError):
        report.interrupted = True
        raise
    finally:
        store.close()
        report.retries = dict(getattr(teacher, "retries", {}))
        report.elapsed_s = round(time.perf_counter() - start, 3)
        store.report.write_text(report.to_json() + "\n", encoding="utf-8")
    return report
