"""Request bounds of `lmforge serve` checked before the tokenizer runs, and the idle heap trim."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from lmforge.serve import limits, scheduler
from lmforge.serve.errors import APIError
from tests.unit.test_serve_units import FakeEngine, _job, _wait

fastapi = pytest.importorskip("fastapi")


def test_prompt_char_limit_is_context_times_longest_token(tiny_tokenizer):
    longest = max(len(t) for t in tiny_tokenizer.get_vocab())
    assert limits.longest_token_chars(tiny_tokenizer) == longest
    assert limits.prompt_char_limit(2048, tiny_tokenizer) == 2048 * longest
    # the bound is safe: a prompt at the limit never has fewer tokens than characters/longest
    text = "word " * (2048 * longest // 5)
    assert len(tiny_tokenizer(text)["input_ids"]) >= len(text) / longest


def test_check_chars_is_a_400_naming_the_limit():
    limits.check_chars(100, 100, 10, "prompt")
    with pytest.raises(APIError) as err:
        limits.check_chars(101, 100, 10, "messages")
    assert err.value.status == 400 and err.value.code == "context_length_exceeded"
    assert err.value.param == "messages" and "not tokenized" in err.value.message


def test_release_memory_runs_on_glibc():
    import platform

    done = limits.release_memory()
    assert done is (platform.libc_ver()[0] == "glibc")


def test_scheduler_trims_once_when_idle_after_work(monkeypatch):
    calls = []
    monkeypatch.setattr(scheduler, "release_memory", lambda: calls.append(time.monotonic()))
    monkeypatch.setattr(scheduler, "TRIM_AFTER", 0.05)

    async def main():
        sched = scheduler.Scheduler(FakeEngine(), 2, 2)
        await asyncio.sleep(0.2)
        idle_before = len(calls)  # nothing was generated yet: nothing to trim
        loop = asyncio.get_running_loop()
        for prompt in ("a", "b"):
            job = _job(loop, prompt)
            sched.submit(job)
            await job.future
            await asyncio.to_thread(_wait, lambda n=len(calls): len(calls) > n)
        await asyncio.sleep(0.2)
        sched.close()
        return idle_before

    assert asyncio.run(main()) == 0
    assert len(calls) == 2  # once per idle period after work, not on every wake-up


def test_huge_prompts_are_refused_before_tokenizing(tiny_model_dir):
    """In-process app: a 600k-character prompt gets its 400 without encode() being called, a
    body over max_body its 413; a normal request still works."""
    from fastapi.testclient import TestClient

    from lmforge.infer.engine import ChatEngine, options
    from lmforge.serve.app import Settings
    from lmforge.serve.server import build

    engine = ChatEngine.load(str(tiny_model_dir), batch_size=2)
    encoded = []
    original = engine.encode
    engine.encode = lambda text: encoded.append(len(text)) or original(text)
    app, sched = build(engine, Settings(name="tiny", gen=options(None, max_new_tokens=2),
                                        max_body=200_000), 2, 2)
    try:
        with TestClient(app) as client:
            for path, body in [
                    ("/v1/chat/completions", {"messages": [{"role": "user",
                                                            "content": "word " * 30_000}]}),
                    ("/v1/completions", {"prompt": ["short", "x" * 150_000]})]:
                start = time.monotonic()
                r = client.post(path, json={"model": "tiny", **body})
                assert r.status_code == 400, r.text
                assert r.json()["error"]["code"] == "context_length_exceeded"
                assert time.monotonic() - start < 5
            assert encoded == []  # neither prompt reached the tokenizer
            r = client.post("/v1/completions", content=json.dumps(
                {"model": "tiny", "prompt": "x" * 300_000}))
            assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
            r = client.post("/v1/completions", json={"model": "tiny", "prompt": "hello"})
            assert r.status_code == 200 and encoded
    finally:
        sched.close()
