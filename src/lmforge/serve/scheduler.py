"""One generation thread in front of the ChatEngine, with a bounded queue and batching.

The model runs in this thread, never on the event loop, so /health and new connections are
served while it generates. Back-pressure: at most ``max_concurrency`` requests are generated at
a time (waiting requests whose settings match are batched together, up to that many, into one
left-padded ``engine.complete`` call); up to ``max_queue`` more wait in line, first come first
served. A request arriving when ``max_concurrency + max_queue`` requests are already in the
server is refused at once with 429 (``Busy``, with Retry-After) rather than kept waiting without
bound. Streaming requests and seeded requests are generated on their own
(a seed makes an answer reproducible only when it does not depend on its batch-mates).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lmforge.serve.limits import release_memory

log = logging.getLogger("lmforge.serve")
TRIM_AFTER = 0.5  # seconds idle after a burst before malloc_trim (see serve.limits)


class Busy(Exception):
    """The queue is full."""


@dataclass
class Job:
    prompts: list[str]
    gen: Any  # GenerationConfig
    stop: list[str]
    loop: asyncio.AbstractEventLoop
    stream: bool = False
    future: asyncio.Future | None = None  # non-streaming: list[Completion]
    pieces: asyncio.Queue | None = None  # streaming: str pieces, then StreamEnd or an exception
    cancelled: threading.Event = field(default_factory=threading.Event)

    def key(self):
        """Jobs with equal keys may share a batch; None: run alone."""
        if self.stream or self.gen.seed is not None:
            return None
        return (tuple(sorted(self.gen.model_dump().items())), tuple(self.stop))


@dataclass
class StreamEnd:
    usage: dict


def _deliver(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the event loop is gone (server shutting down)
        pass


def _settle(future: asyncio.Future, value=None, error: BaseException | None = None) -> None:
    if future.done():  # the client went away and the handler was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class Scheduler:
    def __init__(self, engine, max_concurrency: int = 8, max_queue: int = 64):
        self.engine = engine
        self.max_concurrency, self.max_queue = max_concurrency, max_queue
        self.waiting: deque[Job] = deque()
        self.running = 0
        self.served = 0
        self.cond = threading.Condition()
        self.closed = False
        self.trimmed = True  # nothing to give back yet
        self.thread = threading.Thread(target=self._loop, name="lmforge-generate", daemon=True)
        self.thread.start()

    # ---- called from the event loop ----------------------------------------------------------
    def submit(self, job: Job) -> None:
        with self.cond:
            if self.closed:
                raise Busy("the server is shutting down")
            if self.running + len(self.waiting) >= self.max_concurrency + self.max_queue:
                raise Busy(f"the server is full ({self.running} requests generating, "
                           f"{len(self.waiting)} waiting); retry later")
            self.waiting.append(job)
            self.cond.notify()

    def stats(self) -> dict:
        with self.cond:
            return {"running": self.running, "waiting": len(self.waiting),
                    "max_concurrency": self.max_concurrency, "max_queue": self.max_queue,
                    "served": self.served}

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    # ---- the generation thread ---------------------------------------------------------------
    def _take(self) -> list[Job]:
        first = self.waiting.popleft()
        batch, key = [first], first.key()
        if key is not None:
            for job in list(self.waiting):
                if len(batch) >= self.max_concurrency:
                    break
                if job.key() == key:
                    self.waiting.remove(job)
                    batch.append(job)
        return batch

    def _next(self) -> list[Job] | None:
        """The next batch; None when closed. Idle after work for ``TRIM_AFTER`` seconds, the
        freed heap is handed back to the system (outside the lock: submitters never wait)."""
        while True:
            with self.cond:
                if not self.waiting and not self.closed:
                    self.cond.wait(None if self.trimmed else TRIM_AFTER)
                if self.closed:
                    return None
                if self.waiting:
                    batch = self._take()
                    self.running = len(batch)
                    return batch
                trim, self.trimmed = not self.trimmed, True
            if trim:
                release_memory()

    def _loop(self) -> None:
        while True:
            batch = self._next()
            if batch is None:
                return
            try:
                batch = [j for j in batch if not j.cancelled.is_set()]
                if batch and batch[0].stream:
                    self._stream(batch[0])
                elif batch:
                    self._complete(batch)
            except BaseException as exc:  # delivered to the requests; the thread keeps serving
                log.exception("generation failed")
                for job in batch:
                    self._fail(job, exc)
            finally:
                with self.cond:
                    self.running = 0
                    self.served += len(batch)
                    self.trimmed = False

    def _fail(self, job: Job, exc: BaseException) -> None:
        if job.stream:
            _deliver(job.loop, job.pieces.put_nowait, exc)
        else:
            _deliver(job.loop, _settle, job.future, None, exc)

    def _complete(self, batch: list[Job]) -> None:
        prompts = [p for job in batch for p in job.prompts]
        results = self.engine.complete(prompts, batch[0].gen, stop=batch[0].stop)
        start = 0
        for job in batch:
            mine = results[start:start + len(job.prompts)]
            start += len(job.prompts)
            _deliver(job.loop, _settle, job.future, mine)

    def _stream(self, job: Job) -> None:
        info: dict = {}
        pieces = self.engine.stream_prompt(job.prompts[0], job.gen, stop=job.stop, usage=info)
        try:
            for piece in pieces:
                if job.cancelled.is_set():
                    break
                _deliver(job.loop, job.pieces.put_nowait, piece)
        finally:
            pieces.close()  # a cancelled request stops the generation at its next token
        _deliver(job.loop, job.pieces.put_nowait, StreamEnd(info))
