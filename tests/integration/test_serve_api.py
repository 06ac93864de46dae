"""The OpenAI-compatible server on the tiny model, on 127.0.0.1 (uvicorn on a thread): the real
`openai` client non-streaming and streaming, raw HTTP for every bad-input class (4xx with an
OpenAI error body, never 5xx), the API key, 50 concurrent requests, back-pressure (429), /health
answering while the model generates, and a closed stream stopping its generation."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import httpx
import pytest
import torch

from lmforge.infer.engine import ChatEngine, options
from lmforge.serve.app import Settings
from lmforge.serve.server import build

KEY = "test-key"
NAME = "tiny"


@contextlib.contextmanager
def running(engine, max_concurrency=8, max_queue=64, key=KEY, max_new_tokens=16):
    import uvicorn

    settings = Settings(name=NAME, gen=options(None, max_new_tokens=max_new_tokens), api_key=key)
    app, scheduler = build(engine, settings, max_concurrency, max_queue)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", scheduler
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        scheduler.close()


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    torch.set_num_threads(1)
    return ChatEngine.load(str(tiny_model_dir), batch_size=8)


@pytest.fixture(scope="module")
def server(engine):
    with running(engine) as (url, scheduler):
        yield url, scheduler


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0, timeout=120)


def _chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_openai_client_chat_and_stream(client, engine):
    assert [m.id for m in client.models.list().data] == [NAME]
    want = engine.generate([_chat("hello there")], max_new_tokens=12)[0]
    r = client.chat.completions.create(model=NAME, messages=_chat("hello there"), max_tokens=12,
                                       temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == want.text
    assert r.choices[0].finish_reason == want.choices[0].finish_reason
    assert r.usage.prompt_tokens == want.prompt_tokens == len(engine.encode(engine.render(
        _chat("hello there"))))
    assert r.usage.completion_tokens == len(want.choices[0].token_ids)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    chunks = list(client.chat.completions.create(
        model=NAME, messages=_chat("hello there"), max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want.text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == \
        want.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == r.usage.prompt_tokens


def test_openai_client_completions(client, engine):
    prompts = ["The capital of", "one two"]
    want = engine.complete(prompts, max_new_tokens=6)
    r = client.completions.create(model=NAME, prompt=prompts, max_tokens=6, temperature=0)
    assert [c.text for c in r.choices] == [w.text for w in want]
    assert r.usage.prompt_tokens == sum(w.prompt_tokens for w in want)
    pieces = client.completions.create(model=NAME, prompt=prompts[0], max_tokens=6,
                                       temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in pieces if c.choices) == want[0].text


def test_stop_strings_cut_the_answer(client, engine):
    full = engine.generate([_chat("hello")], max_new_tokens=16)[0].text
    stop = full[3:5]
    r = client.chat.completions.create(model=NAME, messages=_chat("hello"), max_tokens=16,
                                       temperature=0, stop=[stop])
    assert r.choices[0].message.content == full[:full.find(stop)]
    assert r.choices[0].finish_reason == "stop"


def _post(url, body, path="/v1/chat/completions", key=KEY, **kw):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url + path, content=content, headers=headers, timeout=60, **kw)


OK = {"model": NAME, "messages": _chat("hi"), "max_tokens": 2}
BAD = {
    "bad_json": (b'{"model": "tiny", "messages": [', 400, None),
    "not_an_object": (b"[1, 2]", 400, None),
    "unknown_model": ({**OK, "model": "gpt-9"}, 404, "model"),
    "empty_messages": ({**OK, "messages": []}, 400, "messages"),
    "negative_max_tokens": ({**OK, "max_tokens": -5}, 400, "max_tokens"),
    "oversized_prompt": ({**OK, "messages": _chat("word " * 2500)}, 400, "messages"),
    "prompt_plus_answer_over_context": ({**OK, "messages": _chat("word " * 1000),
                                         "max_tokens": 1500}, 400, "messages"),
    "wrong_type": ({**OK, "temperature": "hot"}, 400, "temperature"),
    "n_without_sampling": ({**OK, "n": 3}, 400, "n"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_openai_errors(server, case):
    body, status, param = BAD[case]
    r = _post(server[0], body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    if case.startswith(("oversized", "prompt_plus")):
        assert err["code"] == "context_length_exceeded" and "2048" in err["message"]


def test_body_size_routes_and_completions_validation(server):
    url = server[0]
    r = _post(url, b"x" * (9 * 1024 * 1024))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    r = _post(url, {"model": NAME, "prompt": "a", "max_tokens": -1}, "/v1/completions")
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    r = httpx.get(url + "/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 405 and "error" in r.json()


def test_api_key_is_enforced(server):
    url = server[0]
    for key in (None, "wrong"):
        r = _post(url, OK, key=key)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {key}"}
                         ).status_code == 401
    assert _post(url, OK).status_code == 200
    assert httpx.get(url + "/health").json()["status"] == "ok"  # no key needed


def test_fifty_concurrent_requests_all_succeed_and_are_batched(client, server, engine):
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"question number {i % 5}" for i in range(50)]
    want = {t: engine.generate([_chat(t)], max_new_tokens=4)[0].text for t in set(texts)}
    before = server[1].stats()["served"]
    barrier = threading.Barrier(50)
    calls = []
    original = engine.complete

    def counting(*args, **kwargs):
        calls.append(len(args[0]))
        return original(*args, **kwargs)

    def ask(text):
        barrier.wait(timeout=30)
        r = client.chat.completions.create(model=NAME, messages=_chat(text), max_tokens=4,
                                           temperature=0)
        return r.choices[0].message.content

    engine.complete = counting
    try:
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(ask, texts))
    finally:
        del engine.complete
    assert answers == [want[t] for t in texts]  # batched answers equal one-at-a-time ones
    assert server[1].stats()["served"] - before == 50
    assert sum(calls) == 50 and len(calls) < 50 and max(calls) <= 8


def test_health_answers_while_generating_and_a_full_server_says_429(engine):
    with running(engine, max_concurrency=1, max_queue=0) as (url, scheduler):
        slow = {"model": NAME, "messages": _chat("tell me a long story"), "max_tokens": 400,
                "temperature": 0}
        result = {}
        worker = threading.Thread(target=lambda: result.setdefault("r", _post(url, slow)))
        worker.start()
        deadline = time.monotonic() + 30
        while scheduler.stats()["running"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        health = httpx.get(url + "/health", timeout=10)
        assert health.status_code == 200 and time.monotonic() - start < 2.0
        assert health.json()["running"] == 1
        busy = _post(url, OK)
        assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["type"] == "rate_limit_error"
        worker.join(timeout=120)
        assert result["r"].status_code == 200
        assert _post(url, OK).status_code == 200  # served again once there is room


def test_a_closed_stream_stops_its_generation(engine):
    with running(engine, max_concurrency=1, max_queue=0) as (url, scheduler):
        body = {"model": NAME, "messages": _chat("go on"), "max_tokens": 2000, "stream": True}
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=headers,
                          timeout=60) as r:
            assert r.status_code == 200
            next(r.iter_lines())  # the first event, then hang up
        deadline = time.monotonic() + 10
        while scheduler.stats()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scheduler.stats()["running"] == 0  # 2000 tokens would take far longer
