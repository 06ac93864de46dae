"""Tool calling in chat rows: the ``tools`` column, assistant tool calls and tool results, mapped
to one canonical form (what transformers' chat templates expect) by pure functions.

Canonical form:

- ``tools``: a tuple of JSON schemas ``{"type": "function", "function": {"name", "description",
  "parameters"}}`` (a bare ``{"name", ...}`` schema, LLaMA-Factory's form, is wrapped);
- an assistant turn that calls tools: ``{"role": "assistant", "content": "" (or its text),
  "tool_calls": [{"type": "function", "function": {"name": ..., "arguments": {...}}}]}`` with the
  arguments as an object (OpenAI's JSON-string arguments are parsed, so templates that write
  ``arguments | tojson`` do not encode them twice);
- a tool result: ``{"role": "tool", "content": "..."}`` (``name`` / ``tool_call_id`` kept).

Accepted spellings: OpenAI (``tool_calls``, ``role: tool``; the older ``function_call`` key and
``role: function``), LLaMA-Factory / ShareGPT (``from: function_call`` whose value is the call as
JSON, ``from: observation``), and ``tool`` / ``ipython`` result roles.
"""

from __future__ import annotations

import json
from typing import Any

from lmforge.data.sources import bad_row

CALL_ROLE = "function_call"  # LLaMA-Factory / ShareGPT: an assistant turn that is a tool call
RESULT_ROLES = ("tool", "observation", "function", "ipython")
_KEEP = ("name", "tool_call_id")  # extra keys of a tool result that templates may use


def _json_value(value: Any, what: str, where: str, key: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise bad_row(where, f"{what} is not valid JSON ({exc.msg})", key) from None


def _call(raw: Any, what: str, where: str, key: str) -> dict:
    """One call in canonical form, from ``{"type": "function", "function": {...}}`` or a bare
    ``{"name", "arguments"}``."""
    if not isinstance(raw, dict):
        raise bad_row(where, f"{what} must be an object, got {type(raw).__name__}", key)
    fn = raw.get("function", raw)
    if not isinstance(fn, dict):
        raise bad_row(where, f"{what}: 'function' must be an object", key)
    name = fn.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_row(where, f"{what} has no function name", key)
    args = _json_value(fn.get("arguments", {}), f"{what}: the arguments", where, key)
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise bad_row(where, f"{what}: the arguments must be a JSON object, got "
                             f"{type(args).__name__}", key)
    call = {"type": "function", "function": {"name": name, "arguments": args}}
    if isinstance(raw.get("id"), str):
        call["id"] = raw["id"]
    return call


def tool_calls(m: dict, i: int, where: str, key: str) -> list[dict] | None:
    """The canonical tool calls of an OpenAI-style assistant message, or None."""
    raw = m.get("tool_calls")
    if raw is None and isinstance(m.get("function_call"), dict):  # OpenAI's older form
        raw = [m["function_call"]]
    if raw is None:
        return None
    raw = _json_value(raw, f"item {i}: tool_calls", where, key)
    if not isinstance(raw, list) or not raw:
        raise bad_row(where, f"item {i}: tool_calls must be a non-empty list", key)
    return [_call(c, f"item {i}: tool call {j}", where, key) for j, c in enumerate(raw)]


def calls_from_text(text: str, i: int, where: str, key: str) -> list[dict]:
    """A ``function_call`` turn's value: one call (or a list of calls) as JSON text."""
    value = _json_value(text, f"item {i}: the function call", where, key)
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise bad_row(where, f"item {i}: the function call list is empty", key)
    return [_call(c, f"item {i}: function call {j}", where, key) for j, c in enumerate(calls)]


def result_message(m: dict, content: str) -> dict:
    out = {"role": "tool", "content": content}
    out.update({k: m[k] for k in _KEEP if isinstance(m.get(k), str)})
    return out


def _schema(item: Any, i: int, where: str, key: str) -> dict:
    if not isinstance(item, dict):
        raise bad_row(where, f"item {i} must be a JSON schema object", key)
    fn = item.get("function") if item.get("type") == "function" else item
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise bad_row(where, f"item {i} has no function name (expected {{\"type\": "
                             "\"function\", \"function\": {\"name\", \"description\", "
                             "\"parameters\"}})", key)
    return {"type": "function", "function": fn}


def parse_tools(row: dict, columns: dict, where: str) -> tuple[dict, ...] | None:
    """The row's ``tools`` column (a list of JSON schemas, or that list as JSON text)."""
    key = columns.get("tools", "tools")
    value = row.get(key) if key else None
    if value in (None, "", []):
        return None
    value = _json_value(value, "the tools list", where, key)
    if value in (None, []):
        return None
    if not isinstance(value, list):
        raise bad_row(where, f"must be a list of JSON schemas, got {type(value).__name__}", key)
    return tuple(_schema(t, i, where, key) for i, t in enumerate(value))


def has_tool_turns(msgs: list[dict]) -> bool:
    for m in msgs:  # a loop, not any(): called for every row read
        if m["role"] == "tool" or "tool_calls" in m and m["tool_calls"]:
            return True
    return False


def check_tool_turns(msgs: list[dict], where: str, key: str, last: str = "assistant") -> None:
    """The order of a conversation with tool turns: user first; an assistant answers a user or
    tool results; tool results follow an assistant's tool calls (or other results); a user
    follows an assistant; every tool call gets a result unless it ends the conversation."""
    if not msgs:
        raise bad_row(where, "has no user/assistant turns", key)
    prev = None
    allowed = {None: ("user",), "user": ("assistant",), "assistant": ("user",),
               "call": ("tool",), "tool": ("tool", "assistant")}
    for i, m in enumerate(msgs):
        role = m["role"]
        if role not in allowed[prev]:
            after = {None: "at the start", "call": "after a tool call"}.get(prev, f"after '{prev}'")
            raise bad_row(where, f"turn {i} is '{role}' but {' or '.join(allowed[prev])} was "
                                 f"expected {after} (tool results follow the assistant's tool "
                                 "calls, then the assistant answers)", key)
        prev = "call" if role == "assistant" and m.get("tool_calls") else role
        if not m["content"].strip() and not m.get("tool_calls"):
            raise bad_row(where, f"turn {i}: empty {role} message", key)
    if msgs[-1]["role"] != last:
        raise bad_row(where, f"the last turn must be the {last}'s", key)
