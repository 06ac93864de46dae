"""Chat requests to what the template renders, and generated text back to OpenAI messages, tool
calls included.

A request with ``tools`` or tool turns in its history (assistant ``tool_calls``, ``role: tool``
results) is read by the same converter as training data (``data.formats`` / ``data.tools``):
OpenAI's JSON-string arguments become objects, so the template renders a call as it did in
training. Problems are 400s naming the message. An answer is parsed for the template's tool-call
tags (``infer.tool_calls``); calls come back as ``message.tool_calls`` with ``finish_reason:
"tool_calls"``, malformed ones as plain text.
"""

from __future__ import annotations

from lmforge.errors import DataError
from lmforge.serve.errors import APIError

WHERE = "request"


def _bad(exc: DataError, param: str) -> APIError:
    what = f"{exc.field}: {exc.reason}" if exc.field else exc.reason
    return APIError(400, f"{param}: {what}", param, "invalid_value")


def chat_messages(req, system: str | None) -> tuple[list[dict], list | None]:
    """(messages, tools) of a chat request; ``system`` is added when the chat has none."""
    from lmforge.data import formats, tools as tool_data

    raw = [m.as_dict() for m in req.messages]
    tools = req.tool_list()
    if tools or tool_data.has_tool_turns(raw) or any(m.get("tool_call_id") for m in raw):
        try:
            tools = tool_data.parse_tools({"tools": tools}, {}, WHERE)
        except DataError as exc:
            raise _bad(exc, "tools") from None
        try:
            head, msgs = formats.message_list(raw, WHERE, "messages", {})
        except DataError as exc:
            raise _bad(exc, "messages") from None
        raw = ([{"role": "system", "content": head}] if head is not None else []) + msgs
    else:
        raw = [{"role": m["role"], "content": m["content"]} for m in raw]
    if system and not any(m["role"] == "system" for m in raw):
        raw.insert(0, {"role": "system", "content": system})
    return raw, (list(tools) if tools else None)


def answer(engine, text: str, finish_reason: str, tools) -> tuple[dict, str]:
    """(assistant message, finish_reason) of one generated answer."""
    from lmforge.infer.tool_calls import openai_calls
    from lmforge.serve.schemas import chat_message

    if not tools:
        return chat_message(text), finish_reason
    content, calls = engine.tool_calls(text)
    if not calls:
        return chat_message(text), finish_reason
    return chat_message(content, openai_calls(calls)), "tool_calls"


def stream_deltas(message: dict) -> list[dict]:
    """The deltas that stream a buffered answer with tool calls (OpenAI's chunk form)."""
    out = [{"content": message["content"]}] if message.get("content") else []
    out += [{"tool_calls": [{"index": i, **call}]} for i, call in enumerate(message["tool_calls"])]
    return out
