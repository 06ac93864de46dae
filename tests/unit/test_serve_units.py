"""The API server's parts without a model: request validation, error bodies, the scheduler's
back-pressure and batching (with a fake engine), binding warnings, served model names."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from lmforge.config.eval import GenerationConfig
from lmforge.infer.types import Choice, Completion
from lmforge.serve import errors, schemas
from lmforge.serve.scheduler import Busy, Job, Scheduler


def _error(cls, data) -> errors.APIError:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        cls.model_validate(data)
    return errors.from_validation(info.value)


MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("data, param", [
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": MSG, "max_tokens": -3}, "max_tokens"),
    ({"model": "m", "messages": MSG, "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": MSG, "temperature": 5}, "temperature"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": MSG}, "model"),
    ({"model": "m", "messages": MSG, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "m", "messages": MSG, "logprobs": True}, "logprobs"),
])
def test_bad_chat_fields_name_the_parameter(data, param):
    err = _error(schemas.ChatRequest, data)
    body = err.body()["error"]
    assert err.status == 400 and body["param"] == param
    assert body["message"].startswith(param) and body["type"] == "invalid_request_error"
    assert set(body) == {"message", "type", "param", "code"}


def test_message_content_parts_and_developer_role():
    req = schemas.ChatRequest.model_validate({
        "model": "m", "unknown_option": 1, "stop": "END",
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "be "},
                                                        {"type": "text", "text": "brief"}]},
                     {"role": "user", "content": "hi"}]})
    assert [m.as_dict() for m in req.messages] == [{"role": "system", "content": "be brief"},
                                                  {"role": "user", "content": "hi"}]
    assert req.stops() == ["END"] and req.limit() is None
    assert schemas.CompletionRequest.model_validate({"model": "m", "prompt": ["a", "b"]}
                                                    ).prompts() == ["a", "b"]
    assert _error(schemas.CompletionRequest, {"model": "m", "prompt": []}).param == "prompt"


def test_binding_warnings():
    from lmforge.serve.server import api_key, binding_warning
    from lmforge.webui.app import binding_warning as ui_warning

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert binding_warning(host, None) is None and ui_warning(host) is None
    assert "without an API key" in binding_warning("0.0.0.0", None)
    assert binding_warning("0.0.0.0", "k") is None
    assert "no login" in ui_warning("0.0.0.0")
    assert api_key("flag") == "flag"


def test_api_key_from_the_environment(monkeypatch):
    from lmforge.serve.server import API_KEY_ENV, api_key

    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert api_key(None) == "from-env"
    monkeypatch.delenv(API_KEY_ENV)
    assert api_key(None) is None


def test_served_model_name():
    from lmforge.commands.serve import served_name

    assert served_name("builtin:tiny-llama") == "tiny-llama"
    assert served_name("runs/tiny-sft/") == "tiny-sft"


class FakeEngine:
    """Records each complete() call; blocks until released when ``gate`` is set."""

    def __init__(self):
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def complete(self, prompts, gen, stop=()):
        self.calls.append(list(prompts))
        self.gate.wait(10)
        return [Completion(1, [Choice(p.upper(), [1, 2], "stop")]) for p in prompts]


def _job(loop, prompt, **gen):
    return Job([prompt], GenerationConfig(**gen), [], loop, future=loop.create_future())


def _wait(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError
        time.sleep(0.01)


def test_scheduler_queues_batches_and_refuses_when_full():
    async def main():
        engine = FakeEngine()
        sched = Scheduler(engine, max_concurrency=2, max_queue=2)
        loop = asyncio.get_running_loop()
        engine.gate.clear()
        first = _job(loop, "a")
        sched.submit(first)
        await asyncio.to_thread(_wait, lambda: sched.stats()["running"] == 1)
        same = [_job(loop, p) for p in ("b", "c")]
        seeded = _job(loop, "d", seed=1)
        for job in [*same, seeded]:
            sched.submit(job)
        with pytest.raises(Busy):  # 1 running + 3 waiting = max_concurrency + max_queue
            sched.submit(_job(loop, "e"))
        engine.gate.set()
        results = await asyncio.gather(*(j.future for j in [first, *same, seeded]))
        sched.close()
        return engine.calls, [r[0].text for r in results]

    calls, texts = asyncio.run(main())
    assert texts == ["A", "B", "C", "D"]
    # b and c share settings: one batch; d has a seed: alone
    assert calls == [["a"], ["b", "c"], ["d"]]


def test_scheduler_delivers_engine_errors_and_keeps_serving():
    class Broken(FakeEngine):
        def complete(self, prompts, gen, stop=()):
            if prompts == ["bad"]:
                raise RuntimeError("boom")
            return super().complete(prompts, gen, stop)

    async def main():
        sched = Scheduler(Broken(), 1, 4)
        loop = asyncio.get_running_loop()
        bad, good = _job(loop, "bad", seed=1), _job(loop, "ok", seed=2)
        sched.submit(bad)
        sched.submit(good)
        with pytest.raises(RuntimeError):
            await bad.future
        text = (await good.future)[0].text
        sched.close()
        return text

    assert asyncio.run(main()) == "OK"
