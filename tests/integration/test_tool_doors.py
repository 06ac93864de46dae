"""Tools through every inference door on the tiny tool-calling model (`lmforge tiny --tools`, the
chatml_tools template): the OpenAI-compatible server (in-process test client), `lmforge predict`
and the terminal chat. The prompt is rendered by the real template; the generated text is
scripted where a test needs a tool call (a random tiny model does not write one), and real
where a test only needs a well-formed response."""

from __future__ import annotations

import io
import json

import pytest
import torch

from lmforge.infer.engine import ChatEngine, options
from lmforge.infer.types import Choice, Completion

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'


class Scripted(ChatEngine):
    """The real template and tokenizer; the answers are given, the prompts recorded."""

    def __init__(self, engine: ChatEngine):
        super().__init__(engine.model, engine.tokenizer, engine.template, "tiny-tools", 4)
        self.answers: list[str] = []
        self.prompts: list[str] = []

    def complete(self, prompts, gen=None, logprobs=False, progress=None, stop=(), **over):
        self.prompts += prompts
        out = [Completion(len(self.encode(p)), [Choice(self.answers.pop(0), [1, 2], "stop")])
               for p in prompts]
        if progress is not None:
            progress(len(prompts))
        return out

    def stream_prompt(self, prompt, gen=None, stop=(), usage=None, **over):
        self.prompts.append(prompt)
        text = self.answers.pop(0)
        yield from (text[i:i + 7] for i in range(0, len(text), 7))
        if usage is not None:
            usage.update(prompt_tokens=3, completion_tokens=2, finish_reason="stop")


@pytest.fixture(scope="module")
def real():
    torch.set_num_threads(1)
    return ChatEngine.load("builtin:tiny-llama-tools", batch_size=4)


@pytest.fixture
def scripted(real):
    return Scripted(real)


def _client(engine):
    from fastapi.testclient import TestClient

    from lmforge.serve.app import Settings
    from lmforge.serve.server import build

    app, sched = build(engine, Settings(name="tiny", gen=options(None, max_new_tokens=8)), 2, 4)
    return TestClient(app), sched


def _post(engine, body, stream=False):
    client, sched = _client(engine)
    try:
        with client:
            r = client.post("/v1/chat/completions", json={"model": "tiny", **body,
                                                          "stream": stream})
            return r.status_code, (r.text if stream else r.json())
    finally:
        sched.close()


HISTORY = [{"role": "user", "content": "Weather in Oslo?"},
           {"role": "assistant", "content": None, "tool_calls": [
               {"id": "call_1", "type": "function", "function": {
                   "name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
           {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees"}]


def test_server_returns_tool_calls(scripted):
    scripted.answers = [CALL]
    status, body = _post(scripted, {"messages": [{"role": "user", "content": "Oslo?"}],
                                    "tools": TOOLS})
    assert status == 200, body
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert choice["message"]["content"] is None
    # the tools reached the template: the schema is in the prompt, as in training
    assert "<tools>" in scripted.prompts[0] and '"name": "get_weather"' in scripted.prompts[0]


def test_server_history_with_tool_turns_renders_as_in_training(scripted, real):
    from lmforge.data.templates import render_prompt

    scripted.answers = ["It is 12 degrees in Oslo."]
    status, body = _post(scripted, {"messages": HISTORY, "tools": TOOLS})
    assert status == 200, body
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert choice["message"]["content"] == "It is 12 degrees in Oslo."
    canonical = [HISTORY[0], {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "id": "call_1",
         "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "12 degrees", "tool_call_id": "call_1"}]
    assert scripted.prompts[0] == render_prompt(canonical, real.template, real.tokenizer, TOOLS)
    assert CALL in scripted.prompts[0] and "<tool_response>\n12 degrees" in scripted.prompts[0]


def test_server_malformed_call_is_text(scripted):
    bad = '<tool_call>{"name": "get_weather", "arguments": {"city": </tool_call>'
    scripted.answers = [bad]
    status, body = _post(scripted, {"messages": [{"role": "user", "content": "x"}],
                                    "tools": TOOLS})
    assert status == 200
    assert body["choices"][0]["message"] == {"role": "assistant", "content": bad}
    assert body["choices"][0]["finish_reason"] == "stop"


def test_server_streams_tool_calls(scripted):
    scripted.answers = ["Checking.\n" + CALL]
    status, text = _post(scripted, {"messages": [{"role": "user", "content": "Oslo?"}],
                                    "tools": TOOLS}, stream=True)
    assert status == 200
    events = [json.loads(line[6:]) for line in text.splitlines()
              if line.startswith("data: {")]
    deltas = [e["choices"][0]["delta"] for e in events]
    assert {"content": "Checking."} in deltas
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert len(calls) == 1 and calls[0]["index"] == 0
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert text.rstrip().endswith("data: [DONE]")
    assert not any(CALL[:11] in d.get("content", "") for d in deltas)  # tags never leak


@pytest.mark.parametrize("body, param", [
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools"),
    ({"tool_choice": "required", "tools": TOOLS}, "tool_choice"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}, "messages"),
])
def test_server_refuses_bad_tool_requests(scripted, body, param):
    status, out = _post(scripted, {"messages": [{"role": "user", "content": "x"}], **body})
    assert status == 400 and out["error"]["param"] == param, out


def test_server_refuses_tools_for_a_template_without_them(tiny_model_dir):
    engine = ChatEngine.load(str(tiny_model_dir), batch_size=1)  # plain ChatML
    status, out = _post(engine, {"messages": [{"role": "user", "content": "x"}],
                                 "tools": TOOLS})
    assert status == 400 and out["error"]["param"] == "tools"
    assert "chatml_tools" in out["error"]["message"]


def test_server_real_generation_with_tools(real):
    """The real tiny model answers a tools request with a valid OpenAI response (text or calls,
    whatever it writes) and tool_choice 'none' leaves the tools out of the prompt."""
    status, body = _post(real, {"messages": HISTORY, "tools": TOOLS, "temperature": 0})
    assert status == 200, body
    choice = body["choices"][0]
    if choice["finish_reason"] == "tool_calls":
        assert all(json.loads(c["function"]["arguments"]) is not None
                   for c in choice["message"]["tool_calls"])
    else:
        assert isinstance(choice["message"]["content"], str)
        assert choice["finish_reason"] in ("stop", "length")
    assert body["usage"]["prompt_tokens"] > 100  # the tools block is in the prompt
    status, none = _post(real, {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS,
                                "tool_choice": "none"})
    assert status == 200 and none["usage"]["prompt_tokens"] < 30


def test_predict_passes_tools_and_writes_tool_calls(scripted, tmp_path):
    from lmforge.eval.inputs import prediction_inputs
    from lmforge.eval.predict import predict
    from tests.conftest import write_jsonl

    rows = [{"messages": [{"role": "user", "content": "Oslo?"}], "tools": TOOLS},
            {"messages": HISTORY, "tools": json.dumps(TOOLS)},  # tools as JSON text too
            {"prompt": "no tools here"}]
    items = prediction_inputs(write_jsonl(tmp_path / "in.jsonl", rows))
    scripted.answers = [CALL, "12 degrees.", "plain"]
    out = tmp_path / "out.jsonl"
    predict(scripted, items, out, options(None, max_new_tokens=8))
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert recs[0]["tool_calls"] == [{"type": "function", "function": {
        "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    assert recs[0]["tools"] == TOOLS and recs[0]["prediction"] == CALL
    assert recs[1]["tool_calls"] == [] and recs[1]["input"][-1]["role"] == "tool"
    assert "tools" not in recs[2] and "tool_calls" not in recs[2]
    by_text = {p: p for p in scripted.prompts}
    assert sum("<tools>" in p for p in by_text) == 2
    assert any("<tool_response>\n12 degrees" in p for p in by_text)


def test_chat_repl_tool_call_and_result(scripted):
    from lmforge.infer.repl import repl

    scripted.answers = [CALL, "It is 12 degrees."]
    seen = []
    original = scripted.render
    scripted.render = lambda msgs, tools=None: seen.append((list(msgs), tools)) or original(
        msgs, tools)
    out, err = io.StringIO(), io.StringIO()
    code = repl(scripted, options(None, max_new_tokens=8), None,
                stdin=io.StringIO("Oslo?\n/tool 12 degrees\n"), out=out, err=err, tools=TOOLS)
    assert code == 0
    assert out.getvalue() == CALL + "\nIt is 12 degrees.\n"
    assert "tool call: get_weather" in err.getvalue()
    msgs, tools = seen[1]
    assert tools == TOOLS
    assert msgs[1] == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}
    assert msgs[2] == {"role": "tool", "content": "12 degrees"}
    assert CALL in scripted.prompts[1]  # the call is rendered back as the model wrote it


def test_chat_tools_flag_errors(cli, tmp_path, tiny_model_dir):
    bad = tmp_path / "tools.json"
    bad.write_text('{"not": "a list"}')
    r = cli("chat", "builtin:tiny-llama-tools", "--tools", str(bad), stdin="hi\n")
    assert r.returncode != 0 and "must be a list" in r.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps(TOOLS))
    r = cli("chat", str(tiny_model_dir), "--tools", str(good), stdin="hi\n")
    assert r.returncode != 0 and "does not take tools" in r.stderr and "chatml_tools" in r.stderr


@pytest.mark.slow
def test_chat_tools_flag_runs(cli, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(TOOLS))
    r = cli("chat", "builtin:tiny-llama-tools", "--tools", str(good), "--max-new-tokens", "4",
            stdin="Oslo?\n/tool 12 degrees\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") >= 1 and "Traceback" not in r.stderr
