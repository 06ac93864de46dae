"""A minimal OpenAI-compatible teacher on 127.0.0.1 for the distill tests (FakeTeacher), that can
be told to fail, delay, hang, rate-limit or answer wrongly; plus config/record helpers. Used by
tests/integration/test_distill_endpoint.py and tests/e2e/test_distill_cli.py."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import write_jsonl

KEY_ENV = "LMF_DISTILL_TEST_KEY"
SECRET = "sk-test-Zq81-very-secret"


class FakeTeacher:
    """Answers "Q <id>: <a> + <b>" prompts with a worked sum ending in "Answer: <a+b>".

    ``script``: actions for the next requests in order ("429", "429:<retry-after>", "500", "400",
    "401", "hang", "garbage"); ``fail_ids``: {id: action} applied to every request for that id;
    ``wrong``: {id: set of sample indexes (from the request seed) answered wrongly, or None for
    all}; ``delay``: seconds per request. Bounded: at most ``max_requests`` answered.
    """

    def __init__(self, delay: float = 0.0, max_requests: int = 2000, hang_s: float = 2.0):
        self.delay, self.max_requests, self.hang_s = delay, max_requests, hang_s
        self.script: list[str] = []
        self.fail_ids: dict[str, str] = {}
        self.wrong: dict[str, set | None] = {}
        self.lock = threading.Lock()
        self.inflight = self.max_inflight = self.requests = 0
        self.auth: set[str] = set()
        self.seen: dict[str, list[float]] = {}  # id -> request times
        self.limited_at: list[float] = []  # when each 429 was answered
        self.bodies: list[dict] = []
        handler = type("H", (_Handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def solve(prompt: str) -> tuple[str, int, str]:
        """(record id, correct total, worked text before the total) for a "Q id: a + b" prompt."""
        m = re.search(r"Q (\S+): (-?\d+) \+ (-?\d+)", prompt)
        rid, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        return rid, a + b, f"First take {a}. Adding {b} gives"

    def reply(self, body: dict, headers) -> tuple[int, dict, str]:
        rid, total, work = self.solve(body["messages"][-1]["content"])
        with self.lock:
            self.requests += 1
            self.auth.add(headers.get("Authorization", ""))
            self.seen.setdefault(rid, []).append(time.monotonic())
            self.bodies.append(body)
            action = self.script.pop(0) if self.script else self.fail_ids.get(rid, "ok")
            if self.requests > self.max_requests:
                action = "503"
        if action.startswith("429"):
            wait = action.partition(":")[2] or "0"
            self.limited_at.append(time.monotonic())
            return 429, {"Retry-After": wait}, '{"error": "slow down"}'
        if action in ("500", "503", "400"):
            return int(action), {}, '{"error": "boom"}'
        if action == "echo400":  # a server that echoes the credentials it got
            auth = headers.get("Authorization")
            return 400, {}, json.dumps({"error": f"bad request from {auth}"})
        if action == "401":
            return 401, {}, json.dumps({"error": f"invalid key {headers.get('Authorization')}"})
        if action == "hang":
            time.sleep(self.hang_s)
        if action == "garbage":
            return 200, {}, "not json"
        sample = body.get("seed", 0) % 1000
        wrong = rid in self.wrong and (self.wrong[rid] is None or sample in self.wrong[rid])
        if isinstance(total, int) and wrong:
            total += 1 + sample
        text = f"{work} {total}.\nAnswer: {total}"
        return 200, {}, json.dumps({"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text},
             "finish_reason": "stop"}]})


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTeacher

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802 - http.server's naming
        fake = self.fake
        with fake.lock:
            fake.inflight += 1
            fake.max_inflight = max(fake.max_inflight, fake.inflight)
        try:
            time.sleep(fake.delay)
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            if not self.path.endswith("/chat/completions"):
                status, headers, text = 404, {}, "no such route"
            else:
                status, headers, text = fake.reply(body, self.headers)
            data = text.encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with fake.lock:
                fake.inflight -= 1


def sum_records(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"r{i}", "a": i, "b": 2 * i + 1, "gold": 3 * i + 1}
            for i in range(start, start + n)]


def make_config(tmp: Path, url: str, n: int = 10, **distill) -> dict:
    data = write_jsonl(tmp / "in.jsonl", sum_records(n))
    tree = {"teacher": {"base_url": url, "model": "fake", "api_key_env": KEY_ENV},
            "input": str(data), "prompt": "Q {{ id }}: {{ a }} + {{ b }}",
            "system": "Solve it.", "output": str(tmp / "out" / "train.jsonl"),
            "generation": {"seed": 0, "max_new_tokens": 64}, "concurrency": 2, "timeout": 5,
            "retries": {"max_attempts": 4, "backoff": 0.01, "max_backoff": 0.05},
            "verify": {"answer_pattern": r"Answer:\s*(-?\d+)", "gold_field": "gold"}}
    for key, value in distill.items():
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            tree[key] = {**tree[key], **value}
        else:
            tree[key] = value
    return {"distill": tree}


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_fake_teacher_answers_fails_on_request_and_counts_inflight():
    import httpx

    with FakeTeacher() as fake:
        body = {"model": "m", "messages": [{"role": "user", "content": "Q r1: 2 + 3"}]}
        ok = httpx.post(fake.url + "/chat/completions", json=body).json()
        assert ok["choices"][0]["message"]["content"].endswith("Answer: 5")
        fake.script = ["429:1.5"]
        limited = httpx.post(fake.url + "/chat/completions", json=body)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1.5"
        assert httpx.post(fake.url + "/nope", json=body).status_code == 404
        assert (fake.requests, fake.max_inflight, fake.inflight) == (2, 1, 0)
