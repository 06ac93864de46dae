"""Tool calls parsed out of generated text (lmforge.infer.tool_calls): the tags come from the chat
template itself, well-formed calls are returned in canonical form, several calls in order, and
anything malformed comes back as plain text content (never an exception)."""

from __future__ import annotations

import json

import pytest

from lmforge.data.templates import builtin_template
from lmforge.infer.tool_calls import (CallFormat, call_format, openai_calls, parse,
                                      supports_tools)

TAGS = CallFormat("<tool_call>", "</tool_call>")


def _call(name, **args):
    return {"type": "function", "function": {"name": name, "arguments": args}}


def test_formats_come_from_the_template(tiny_tokenizer):
    assert call_format(builtin_template("chatml_tools"), tiny_tokenizer) == TAGS
    for name in ("chatml", "llama3", "alpaca", "plain"):  # they leave tools out
        assert not supports_tools(builtin_template(name), tiny_tokenizer)
        assert call_format(builtin_template(name), tiny_tokenizer) is None
    assert call_format(None, tiny_tokenizer) is None


def test_bare_json_template(tiny_tokenizer):
    """A template that writes a call as a bare JSON object (Llama 3.1 style, 'parameters')."""
    template = ("{% if tools %}{{ tools | tojson }}\n{% endif %}"
                "{% for m in messages %}{% if m.tool_calls %}assistant: {% for c in m.tool_calls %}"
                "{{ {'name': c.function.name, 'parameters': c.function.arguments} | tojson }}"
                "{% endfor %}{{ eos_token }}{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}"
                "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")
    fmt = call_format(template, tiny_tokenizer)
    assert fmt == CallFormat("", "")
    assert parse(' {"name": "f", "parameters": {"x": 1}} ', fmt) == ("", [_call("f", x=1)])
    assert parse("The answer is 4.", fmt) == ("The answer is 4.", [])
    assert parse('{"name": "f", "parameters": ', fmt) == ('{"name": "f", "parameters": ', [])


def test_one_well_formed_call():
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'
    assert parse(text, TAGS) == ("", [_call("get_weather", city="Oslo")])


def test_several_calls_and_text_around_them():
    text = ('Let me check.\n<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n'
            '<tool_call>{"name": "b", "arguments": "{\\"y\\": [2]}"}</tool_call>')
    content, calls = parse(text, TAGS)
    assert content == "Let me check."
    assert calls == [_call("a", x=1), _call("b", y=[2])]  # a JSON-string argument is decoded


def test_unclosed_last_call_is_read_when_its_json_is_complete():
    assert parse('<tool_call>{"name": "f", "arguments": {}}', TAGS) == ("", [_call("f")])


@pytest.mark.parametrize("text", [
    "no call at all",
    '<tool_call>{"name": "f", "arguments": {"x": </tool_call>',  # JSON cut off
    "<tool_call>\n</tool_call>",  # empty body
    '<tool_call>{"arguments": {}}</tool_call>',  # no name
    '<tool_call>{"name": "f", "arguments": [1]}</tool_call>',  # arguments not an object
    '<tool_call>{"name": "f", "arguments": "not json"}</tool_call>',
    '<tool_call>["f"]</tool_call>',
    # one good call and one bad: the whole answer is text, not half a result
    '<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_call>{oops}</tool_call>',
])
def test_malformed_calls_come_back_as_text(text):
    assert parse(text, TAGS) == (text, [])


def test_no_format_means_no_parsing():
    text = '<tool_call>{"name": "f", "arguments": {}}</tool_call>'
    assert parse(text, None) == (text, [])


def test_openai_form():
    out = openai_calls([_call("f", x="é")])
    assert out[0]["id"].startswith("call_") and out[0]["type"] == "function"
    assert out[0]["function"] == {"name": "f", "arguments": '{"x": "é"}'}
    assert json.loads(out[0]["function"]["arguments"]) == {"x": "é"}
    assert openai_calls([_call("f")], ids=False) == [
        {"type": "function", "function": {"name": "f", "arguments": "{}"}}]


def test_webui_tools_box():
    from lmforge.webui.chat import tool_list

    assert tool_list("") is None and tool_list("  ") is None
    assert tool_list('[{"name": "f", "parameters": {}}]') == [
        {"type": "function", "function": {"name": "f", "parameters": {}}}]
    with pytest.raises(ValueError, match="not valid JSON"):
        tool_list("[{")
    with pytest.raises(ValueError, match="has no function name"):
        tool_list('[{"description": "x"}]')
