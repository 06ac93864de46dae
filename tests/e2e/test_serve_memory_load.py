"""`lmforge serve` keeps its memory under load (a real server process on 127.0.0.1, the tiny
model): a burst of 200 concurrent requests (the load test's mix: a third malformed, some
streaming) plus huge prompts (900k characters, under the body limit: 400 before tokenizing;
3 MiB bodies: 413 while reading) leaves the resident memory within 64 MiB of where it started
once the server is idle, and the huge prompts are answered at once.

Before the fix a single 3 MiB prompt was tokenized in full (600k tokens, 2-10 s of CPU) before
its 400, and glibc kept the tokenizer's freed buffers: +260 MiB per such request, for good.
The slow variant runs five bursts and bounds the growth over all of them.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.e2e.test_robust_serve_load import AUTH, OK, _chat, _load, _rss_mib
from tests.e2e.test_robust_serve_load import server  # noqa: F401 (the module's server fixture)

httpx = pytest.importorskip("httpx")
BOUND_MIB = 64  # resident growth allowed after a burst, once idle (docs/reliability.md)


async def _huge(url: str) -> list[tuple[int, dict, float]]:
    """Three 900k-character chat prompts and three 3 MiB bodies, concurrently."""
    big_chat = json.dumps({**OK, "messages": _chat("word " * 180_000)}).encode()
    big_body = json.dumps({"model": "tiny", "prompt": "word " * ((3 << 20) // 5)}).encode()

    async def send(client, path, body):
        start = time.monotonic()
        r = await client.post(url + path, content=body, headers=AUTH)
        return r.status_code, r.json(), time.monotonic() - start

    async with httpx.AsyncClient(timeout=60) as client:
        return await asyncio.gather(*[send(client, "/v1/chat/completions", big_chat)] * 3,
                                    *[send(client, "/v1/completions", big_body)] * 3)


def _burst(url: str):
    async def both():
        return await asyncio.gather(_load(url), _huge(url))

    (results, health), huge = asyncio.run(both())
    assert not [s for _, s, _ in results if s >= 500]
    assert sorted(s for s, _, _ in huge) == [400, 400, 400, 413, 413, 413], huge
    for status, body, seconds in huge:
        code = body["error"]["code"]
        assert code == ("context_length_exceeded" if status == 400 else "request_too_large")
        if status == 400:
            assert "not tokenized" in body["error"]["message"]
    assert max(s for _, _, s in huge) < 20  # answered without tokenizing (was 2-10 s each)
    assert health and all(s == 200 for s, _ in health)


def _settled_rss(proc, seconds: float = 3.0) -> float:
    time.sleep(seconds)  # the generation thread trims the heap when it falls idle
    return _rss_mib(proc.pid)


def _warm(url: str) -> None:
    for _ in range(3):
        assert httpx.post(url + "/v1/chat/completions", json=OK, headers=AUTH,
                          timeout=60).status_code == 200


@pytest.mark.timeout(240)
def test_a_burst_with_huge_prompts_gives_its_memory_back(server):  # noqa: F811
    url, proc, log = server
    _warm(url)
    _burst(url)  # the first burst grows thread pools, caches and the allocator once
    before = _settled_rss(proc)
    _burst(url)
    after = _settled_rss(proc)
    print(f"\nresident memory: {before:.0f} MiB -> {after:.0f} MiB after a burst")
    assert after - before < BOUND_MIB, (before, after)
    assert proc.poll() is None
    log.seek(0)
    assert "Traceback" not in log.read()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_five_bursts_do_not_accumulate_memory(server):  # noqa: F811
    url, proc, _ = server
    _warm(url)
    _burst(url)
    start = _settled_rss(proc)
    seen = []
    for _ in range(5):
        _burst(url)
        seen.append(_settled_rss(proc))
    print(f"\nresident memory after each of 5 bursts (from {start:.0f} MiB): "
          + ", ".join(f"{m:.0f}" for m in seen))
    assert max(seen) - start < BOUND_MIB, (start, seen)
