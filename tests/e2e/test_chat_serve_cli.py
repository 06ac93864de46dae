"""The CLI faces of the ChatEngine in subprocesses, started together to save time:
`lmforge chat` with piped stdin (answers, history, /reset, /system, /exit), `lmforge serve` with
the key from the environment (driven with the openai client), and `lmforge predict`; the three
give the same greedy answer to the same chat (one engine, one template)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import REPO, run_cli, write_jsonl

N = 12  # new tokens per answer
KEY = "s3cret-test-key"
USER = {"role": "user", "content": "hello"}
SYSTEM = {"role": "system", "content": "Be brief."}
CHAT_STDIN = "hello\nhello\n/reset\nhello\n/system Be brief.\nhello\n/exit\nnot answered\n"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lmforge(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lmforge", *args], cwd=REPO, text=True,
                            **kw)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """(server url, chat result, predict output file, server log file)."""
    tmp = tmp_path_factory.mktemp("faces")
    port = _port()
    log = (tmp / "serve.log").open("w")
    env = dict(os.environ, LMFORGE_API_KEY=KEY)
    serve = _lmforge("serve", "builtin:tiny-llama", "--port", str(port), "--max-new-tokens",
                     str(N), stdout=log, stderr=subprocess.STDOUT, env=env)
    chat = _lmforge("chat", "builtin:tiny-llama", "--max-new-tokens", str(N),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    write_jsonl(tmp / "in.jsonl", [{"messages": [USER]}])
    predict = _lmforge("predict", "--model", "builtin:tiny-llama", "--input",
                       str(tmp / "in.jsonl"), "--output", str(tmp / "out.jsonl"),
                       "--max-new-tokens", str(N), "--no-progress",
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, err = chat.communicate(CHAT_STDIN, timeout=300)
        predict_log = predict.communicate(timeout=300)[0]
        assert predict.returncode == 0, predict_log[-2000:]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert serve.poll() is None, (tmp / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "lmforge serve did not come up"
            time.sleep(0.5)
        yield url, subprocess.CompletedProcess(chat.args, chat.returncode, out, err), \
            tmp / "out.jsonl", tmp / "serve.log"
    finally:
        for proc in (serve, chat, predict):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log.close()


def _client(url, key=KEY):
    from openai import OpenAI

    return OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)


def _serve_answer(url, messages) -> str:
    r = _client(url).chat.completions.create(model="tiny-llama", messages=messages,
                                             max_tokens=N, temperature=0)
    return r.choices[0].message.content


def test_chat_from_piped_stdin(faces):
    url, chat = faces[0], faces[1]
    assert chat.returncode == 0, chat.stderr[-2000:]
    first = _serve_answer(url, [USER])
    second = _serve_answer(url, [USER, {"role": "assistant", "content": first}, USER])
    with_system = _serve_answer(url, [SYSTEM, USER])
    assert len({first, second, with_system}) == 3  # so the comparison below tells them apart
    # the second turn sees the first (history), /reset starts over, /system adds a system turn,
    # and nothing after /exit is answered
    assert chat.stdout == "".join(a + "\n" for a in (first, second, first, with_system))
    assert "conversation cleared" in chat.stderr and "system prompt set" in chat.stderr


def test_chat_serve_and_predict_give_the_same_answer(faces):
    url, chat, predicted = faces[0], faces[1], faces[2]
    rows = [json.loads(line) for line in predicted.read_text().splitlines()]
    assert len(rows) == 1
    from_serve = _serve_answer(url, [USER])
    from_chat = chat.stdout[:len(from_serve) + 1]
    assert rows[0]["prediction"] == from_serve and from_chat == from_serve + "\n"
    stream = _client(url).chat.completions.create(model="tiny-llama", messages=[USER],
                                                  max_tokens=N, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == from_serve


def test_serve_takes_the_key_from_the_environment_and_never_logs_it(faces):
    url, log = faces[0], faces[3]
    from openai import AuthenticationError

    with pytest.raises(AuthenticationError):
        _client(url, key="wrong").models.list()
    assert [m.id for m in _client(url).models.list().data] == ["tiny-llama"]
    r = httpx.post(url + "/v1/chat/completions", json={"model": "tiny-llama",
                                                       "messages": [USER]})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    text = log.read_text()
    assert "/v1/models" in text and KEY not in text  # the access log names routes, not keys


def test_chat_reports_a_missing_model():
    proc = run_cli("chat", "/nonexistent/model", stdin="hi\n", timeout=300)
    assert proc.returncode == 1
    assert "error: model '/nonexistent/model': no such directory" in proc.stderr
