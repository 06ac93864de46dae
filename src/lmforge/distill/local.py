"""A local model as the teacher, through the ChatEngine (lmforge.infer.engine).

Requests from the record workers are gathered into batches: whatever is waiting (at most
``distill.concurrency`` requests, since that many slots exist) is generated together, up to
``teacher.local.batch_size`` chats per ``ChatEngine.generate`` call, in a worker thread so that the
event loop keeps collecting the next batch. Greedy decoding when temperature is 0; stop strings
are the engine's (generation ends at the first one).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from lmforge.config.distill import DistillConfig
from lmforge.distill.teachers import Sample, make_sample


class LocalTeacher:
    def __init__(self, cfg: DistillConfig, engine=None):
        self.cfg, self.local = cfg, cfg.teacher.local
        self.name = self.local.path + (f" + {self.local.adapter}" if self.local.adapter else "")
        self.retries: Counter = Counter()  # nothing is retried locally; kept for the report
        self._engine = engine
        self._queue: list = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"LocalTeacher({self.name!r})"

    def _load(self):
        if self._engine is None:
            from lmforge.infer.engine import ChatEngine

            self._engine = ChatEngine.load(self.local.path, adapter=self.local.adapter,
                                           template=self.local.template, dtype=self.local.dtype,
                                           batch_size=self.local.batch_size)
        return self._engine

    async def __aenter__(self):
        await asyncio.to_thread(self._load)
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._serve())
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def complete(self, messages, index: int) -> Sample:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((list(messages), future))
        self._wake.set()
        return await future

    async def _serve(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the other workers queue their requests first
            while self._queue:
                batch = self._queue[: self.local.batch_size]
                del self._queue[: self.local.batch_size]
                batch = [(m, f) for m, f in batch if not f.cancelled()]
                try:
                    samples = await asyncio.to_thread(self._generate, [m for m, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                    continue
                for (_, f), s in zip(batch, samples):
                    if not f.done():
                        f.set_result(s)

    def _generate(self, chats: list[list[dict]]) -> list[Sample]:
        g = self.cfg.generation
        sampling = dict(do_sample=True, temperature=g.temperature, top_p=g.top_p) \
            if g.temperature > 0 else dict(do_sample=False)
        completions = self._load().generate(chats, stop=list(g.stop),
                                            max_new_tokens=g.max_new_tokens, seed=g.seed,
                                            **sampling)
        return [make_sample(c.choices[0].text, None, self.cfg.teacher.reasoning,
                            c.choices[0].finish_reason) for c in completions]
