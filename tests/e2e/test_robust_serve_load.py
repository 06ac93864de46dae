"""`lmforge serve` under load (a real server process on 127.0.0.1, the tiny model): 200 concurrent
requests, a third of them malformed in different ways (broken or non-UTF-8 JSON, wrong types,
missing or wrong API key, unknown model, oversized body, empty messages...), some streaming.

Holds: no 5xx at all; every malformed request gets a 4xx with an error body; every valid one a
200; /health answers throughout (polled every 50 ms, each answer within 2 s); the server's resident
memory grows by less than 300 MiB and the server is still healthy afterwards. Bounded: 200
requests, 2-token answers, 5 minutes at most.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

httpx = pytest.importorskip("httpx")
KEY = "load-test-key"
TOTAL = 200


def _rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    port = _free_port()
    log = open(tmp_path_factory.mktemp("serve") / "server.log", "w+")
    env = dict(os.environ, LMFORGE_API_KEY=KEY)  # the key via the environment, not argv
    proc = subprocess.Popen([sys.executable, "-m", "lmforge", "serve", str(tiny_model_dir),
                             "--host", "127.0.0.1", "--port", str(port), "--max-queue", "256",
                             "--served-model-name", "tiny", "--log-level", "warning"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    else:
        log.seek(0)
        proc.kill()
        pytest.fail("the server did not start:\n" + log.read()[-3000:])
    yield url, proc, log
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _chat(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


OK = {"model": "tiny", "messages": _chat("hi"), "max_tokens": 2, "temperature": 0}
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
MALFORMED = [  # (body, headers, path)
    (b'{"model": "tiny", "messages": [', AUTH, "/v1/chat/completions"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe"}]}', AUTH,
     "/v1/chat/completions"),
    (b"[1, 2, 3]", AUTH, "/v1/chat/completions"),
    (json.dumps({**OK, "temperature": "hot"}).encode(), AUTH, "/v1/chat/completions"),
    (json.dumps({**OK, "max_tokens": -1}).encode(), AUTH, "/v1/chat/completions"),
    (json.dumps({**OK, "messages": []}).encode(), AUTH, "/v1/chat/completions"),
    (json.dumps({**OK, "messages": [{"role": "wizard", "content": "x"}]}).encode(), AUTH,
     "/v1/chat/completions"),
    (json.dumps({**OK, "messages": [{"role": "user"}]}).encode(), AUTH, "/v1/chat/completions"),
    (json.dumps({**OK, "model": "gpt-9"}).encode(), AUTH, "/v1/chat/completions"),
    (json.dumps(OK).encode(), {"Content-Type": "application/json"}, "/v1/chat/completions"),
    (json.dumps(OK).encode(), {**AUTH, "Authorization": "Bearer wrong"}, "/v1/chat/completions"),
    (json.dumps({**OK, "messages": _chat("word " * 3000)}).encode(), AUTH,
     "/v1/chat/completions"),
    (b"x" * (20 << 20), AUTH, "/v1/chat/completions"),
    (json.dumps({"model": "tiny", "prompt": 5}).encode(), AUTH, "/v1/completions"),
    (json.dumps(OK).encode(), AUTH, "/v1/nothing-here"),
]


def _requests(rng: random.Random) -> list[tuple[bool, bytes, dict, str, bool]]:
    """(malformed, body, headers, path, stream) x TOTAL, shuffled; a third malformed."""
    out = []
    for i in range(TOTAL):
        if i % 3 == 0:
            body, headers, path = MALFORMED[(i // 3) % len(MALFORMED)]
            out.append((True, body, headers, path, False))
        else:
            stream = i % 5 == 1
            req = {**OK, "messages": _chat(f"request {i}: " + "word " * rng.randint(0, 40)),
                   "stream": stream}
            out.append((False, json.dumps(req).encode(), AUTH, "/v1/chat/completions", stream))
    rng.shuffle(out)
    return out


async def _send(client, url, malformed, body, headers, path, stream):
    if stream:
        async with client.stream("POST", url + path, content=body, headers=headers) as r:
            chunks = [c async for c in r.aiter_text()]
            return malformed, r.status_code, "".join(chunks)
    r = await client.post(url + path, content=body, headers=headers)
    return malformed, r.status_code, r.text


async def _health(client, url, stop: asyncio.Event, seen: list):
    while not stop.is_set():
        start = time.monotonic()
        r = await client.get(url + "/health", timeout=10)
        seen.append((r.status_code, time.monotonic() - start))
        await asyncio.sleep(0.05)


async def _load(url):
    limits = httpx.Limits(max_connections=TOTAL + 10, max_keepalive_connections=20)
    async with httpx.AsyncClient(timeout=180, limits=limits) as client, \
            httpx.AsyncClient(timeout=10) as probe:
        stop, health = asyncio.Event(), []
        poller = asyncio.create_task(_health(probe, url, stop, health))
        results = await asyncio.gather(*(_send(client, url, *r)
                                         for r in _requests(random.Random(0))))
        stop.set()
        await poller
    return results, health


@pytest.mark.timeout(300)
def test_two_hundred_concurrent_requests_with_malformed_ones(server):
    url, proc, log = server
    for _ in range(3):  # warm up before measuring memory
        assert httpx.post(url + "/v1/chat/completions", json=OK, headers=AUTH,
                          timeout=60).status_code == 200
    before = _rss_mib(proc.pid)
    results, health = asyncio.run(_load(url))
    after = _rss_mib(proc.pid)

    server_errors = [(s, t[:200]) for _, s, t in results if s >= 500]
    assert not server_errors, server_errors
    bad = [(s, t) for m, s, t in results if m]
    assert all(400 <= s < 500 for s, _ in bad), [(s, t[:200]) for s, t in bad if s < 400]
    assert all("error" in json.loads(t) for _, t in bad)
    good = [(s, t) for m, s, t in results if not m]
    assert all(s == 200 for s, _ in good), [(s, t[:200]) for s, t in good if s != 200]
    assert len(bad) + len(good) == TOTAL

    assert health and all(s == 200 for s, _ in health)
    assert max(d for _, d in health) < 2.0, max(d for _, d in health)
    assert after - before < 300, (before, after)
    assert httpx.get(url + "/health", timeout=5).status_code == 200 and proc.poll() is None
    log.seek(0)
    assert "Traceback" not in log.read()
