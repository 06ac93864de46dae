"""Teachers: an OpenAI-compatible endpoint (httpx, async) with retries, and the shared types.

Retried: timeouts, connection errors, HTTP 408/429/5xx and malformed replies, with exponential
backoff and jitter, honouring ``Retry-After`` / ``retry-after-ms`` (after a 429 that names a
wait, no worker sends anything until it has passed). Fatal (the run stops):
401/403 (bad key) and 404 (wrong base_url or model). Other 4xx fail only that record.
The API key lives in the client's headers only; every reason text is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from lmforge.config.distill import DistillConfig, RetryConfig
from lmforge.errors import ConfigError, LmforgeError, require

MAX_RETRY_AFTER = 600.0


@dataclass(frozen=True)
class Sample:
    text: str  # the response stored in the dataset (reasoning included)
    answer_text: str  # where the final answer is looked for
    finish_reason: str | None = None


class TeacherFailed(Exception):
    """This request (and so its record) failed; the run goes on. ``reason`` is safe to print."""

    def __init__(self, reason: str, retryable: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retryable, self.retry_after = reason, retryable, retry_after


class TeacherFatal(LmforgeError):
    """Every request would fail (bad key, wrong URL or model): stop the run."""


def backoff_delay(attempt: int, policy: RetryConfig, rng: random.Random) -> float:
    """Delay before retry ``attempt`` (0-based): half the exponential step plus jitter."""
    step = min(policy.max_backoff, policy.backoff * (2 ** attempt))
    return step / 2 + rng.uniform(0, step / 2)


def parse_retry_after(headers) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    try:
        if value is not None:
            return min(max(float(value) / 1000, 0.0), MAX_RETRY_AFTER)
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


async def with_retries(call, policy: RetryConfig, rng: random.Random, retries: Counter,
                       sleep=asyncio.sleep):
    """Run ``await call()``; retry TeacherFailed(retryable) up to policy.max_attempts."""
    for attempt in range(policy.max_attempts):
        try:
            return await call()
        except TeacherFailed as exc:
            if not exc.retryable or attempt == policy.max_attempts - 1:
                if exc.retryable:
                    exc.reason += f" (gave up after {policy.max_attempts} attempts)"
                raise
            retries[exc.reason.split(":")[0]] += 1
            wait = exc.retry_after if exc.retry_after is not None else backoff_delay(
                attempt, policy, rng)
            await sleep(wait)
    raise AssertionError("unreachable")


def make_sample(content: str, reasoning: str | None, mode: str, finish: str | None) -> Sample:
    content = (content or "").strip()
    text = content
    if reasoning and reasoning.strip() and mode == "think_tags":
        text = f"<think>\n{reasoning.strip()}\n</think>\n\n{content}"
    return Sample(text, content, finish)


def _display(url: str) -> str:
    """The URL without credentials or query (it is written into every row's metadata)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


class HttpTeacher:
    """POST {base_url}/chat/completions with bounded retries; use ``async with``."""

    def __init__(self, cfg: DistillConfig):
        self.cfg, self.t = cfg, cfg.teacher
        self.name = f"{self.t.model} @ {_display(self.t.base_url)}"
        self.retries: Counter = Counter()
        self._rng = random.Random(cfg.generation.seed)
        self._secret = self._read_key()
        self._client = None
        self._not_before = 0.0  # loop time before which no request is sent (a 429's Retry-After)

    def _read_key(self) -> str | None:
        env = self.t.api_key_env
        if env is None:
            return None
        key = os.environ.get(env, "")
        if not key.strip():
            raise ConfigError(f"distill.teacher.api_key_env: environment variable {env} is not "
                              "set (or empty)", hint=f"export {env}=... before running, or "
                              "set distill.teacher.api_key_env=null for an endpoint without keys")
        return key.strip()

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def __repr__(self) -> str:  # never show the key
        return f"HttpTeacher({self.name!r})"

    async def __aenter__(self):
        httpx = require("httpx", "distill", "lmforge distill with an endpoint teacher")
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(self.cfg.timeout),
            limits=httpx.Limits(max_connections=self.cfg.concurrency,
                                max_keepalive_connections=self.cfg.concurrency))
        return self

    async def __aexit__(self, *exc):
        await self._client.aclose()

    def body(self, messages, index: int) -> dict:
        g = self.cfg.generation
        body = {"model": self.t.model, "messages": list(messages),
                "max_tokens": g.max_new_tokens, "temperature": g.temperature, "top_p": g.top_p}
        if g.stop:
            body["stop"] = list(g.stop)
        if g.seed is not None:
            body["seed"] = g.seed + index
        body.update(g.extra)
        return body

    async def complete(self, messages, index: int) -> Sample:
        policy = self.cfg.retries
        return await with_retries(lambda: self._once(messages, index), policy, self._rng,
                                  self.retries)

    async def _once(self, messages, index: int) -> Sample:
        import httpx

        url = f"{self.t.base_url}/chat/completions"
        loop = asyncio.get_running_loop()
        while self._not_before > loop.time():  # the server asked every client to wait
            await asyncio.sleep(self._not_before - loop.time())
        try:
            resp = await asyncio.wait_for(self._client.post(url, json=self.body(messages, index)),
                                          self.cfg.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise TeacherFailed(f"timeout: no reply within {self.cfg.timeout:g}s",
                                retryable=True) from None
        except httpx.TransportError as exc:
            raise TeacherFailed(self.redact(f"connection error: {type(exc).__name__}: {exc}"),
                                retryable=True) from None
        try:
            return self._parse(resp, url)
        except TeacherFailed as exc:
            if resp.status_code == 429 and exc.retry_after:
                self._not_before = max(self._not_before, loop.time() + exc.retry_after)
            raise

    def _parse(self, resp, url: str) -> Sample:
        status = resp.status_code
        if status != 200:
            snippet = " ".join(self.redact(resp.text).split())[:200]  # redact, then cut
            if status in (401, 403):
                raise TeacherFatal(f"the teacher endpoint refused the request (HTTP {status}: "
                                   f"{snippet})", f"check the key in ${self.t.api_key_env}"
                                   if self.t.api_key_env else "set distill.teacher.api_key_env")
            if status == 404:
                raise TeacherFatal(f"HTTP 404 from {_display(url)} ({snippet})",
                                   "check distill.teacher.base_url (usually ends in /v1) and "
                                   "distill.teacher.model")
            retryable = status in (408, 409, 429) or status >= 500
            raise TeacherFailed(f"HTTP {status}: {snippet}", retryable,
                                parse_retry_after(resp.headers) if retryable else None)
        try:
            choice = resp.json()["choices"][0]
            msg = choice["message"]
            reasoning = msg.get("reasoning_content") or msg.get("reasoning")
            return make_sample(msg.get("content") or "", reasoning if isinstance(reasoning, str)
                               else None, self.t.reasoning, choice.get("finish_reason"))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise TeacherFailed("malformed reply: " + self.redact(resp.text)[:200],
                                retryable=True) from None
