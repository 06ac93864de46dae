"""Convert source rows into canonical ``Conversation`` / ``Text`` examples (pure functions).

A bad row raises ``DataError`` naming its location and field. ``columns`` maps canonical field
names to the names used in the user's files (``{"instruction": "question"}``); mapping a field to
``""`` means "this dataset has no such column". Other formats (preference, kto, prompt) plug in
by adding a converter to ``CONVERTERS`` (and their column names to ``FORMAT_COLUMNS``).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from lmforge.data import tools
from lmforge.data.sources import bad_row, unencodable
from lmforge.data.types import Conversation, Text
from lmforge.errors import ConfigError

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "model": "assistant", "bot": "assistant",
                  tools.CALL_ROLE: tools.CALL_ROLE, **{r: "tool" for r in tools.RESULT_ROLES}}
_PLAIN_ROLES = frozenset(("user", "assistant", "system"))  # {role, content} kept as they are
TAG_KEYS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag",
            "function_tag", "observation_tag")


def _type_name(kind) -> str:
    return kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)


def field_value(row: dict, name: str, columns: dict, where: str, required: bool = True,
                kind: type | tuple = str, allow_empty: bool = False):
    """The value of canonical field ``name`` (renamed by ``columns``), validated."""
    key = columns.get(name, name)
    if not key or key not in row or row[key] is None:
        if required:
            raise bad_row(where, "missing", key or name)
        return None
    value = row[key]
    wants_list = kind is list or (isinstance(kind, tuple) and list in kind)
    if wants_list and isinstance(value, str) and value.lstrip().startswith("["):
        try:  # CSV cells hold lists as JSON text
            value = json.loads(value)
        except json.JSONDecodeError:
            raise bad_row(where, "is not a valid JSON list", key) from None
        if unencodable(value):
            raise bad_row(where, "contains a lone surrogate escape: not valid Unicode text", key)
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise bad_row(where, f"must be {_type_name(kind)}, got {type(value).__name__}", key)
    if isinstance(value, str) and not allow_empty and not value.strip():
        raise bad_row(where, "is empty", key)
    return value


def _history(row: dict, columns: dict, where: str) -> list[dict[str, str]]:
    hist = field_value(row, "history", columns, where, required=False, kind=list)
    if not hist:
        return []
    key = columns.get("history", "history")
    msgs: list[dict[str, str]] = []
    if all(isinstance(h, (list, tuple)) for h in hist):
        for i, pair in enumerate(hist):
            if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
                raise bad_row(where, f"item {i} must be a [user, assistant] pair of strings", key)
            msgs += [{"role": "user", "content": pair[0]},
                     {"role": "assistant", "content": pair[1]}]
    elif all(isinstance(h, str) for h in hist):
        if len(hist) % 2:
            raise bad_row(where, f"a flat history must alternate user/assistant and have an even "
                                 f"length (got {len(hist)} items)", key)
        for i, text in enumerate(hist):
            msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    else:
        raise bad_row(where, "must be a list of [user, assistant] pairs or a flat list of "
                             "strings", key)
    for i, m in enumerate(msgs):
        if not m["content"].strip():
            raise bad_row(where, f"turn {i // 2} has an empty {m['role']} message", key)
    return msgs


def _with_system(system: str | None, msgs: list[dict]) -> tuple[dict, ...]:
    return tuple(([{"role": "system", "content": system}] if system else []) + msgs)


def _origin(row: dict, columns: dict) -> dict:
    key = columns.get("origin", "origin")
    value = row.get(key) if key else None
    return value if isinstance(value, dict) else ({"origin": value} if value is not None else {})


def _turn(prompt: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def from_alpaca(row: dict, columns: dict, where: str, default_system: str | None = None):
    instruction = field_value(row, "instruction", columns, where, allow_empty=True)
    extra = field_value(row, "input", columns, where, required=False, allow_empty=True) or ""
    if not instruction.strip() and not extra.strip():
        raise bad_row(where, "is empty (and so is the input)", columns.get("instruction",
                                                                           "instruction"))
    output = field_value(row, "output", columns, where)
    system = field_value(row, "system", columns, where, required=False, allow_empty=True)
    prompt = "\n".join(p for p in (instruction, extra) if p.strip())
    turn = _turn(prompt, output)
    if extra.strip():  # kept apart too, for templates with an input block (alpaca_stanford)
        turn[0].update(instruction=instruction, input=extra)
    msgs = _history(row, columns, where) + turn
    return Conversation(_with_system(system or default_system, msgs), _origin(row, columns), where)


def from_prompt_response(row: dict, columns: dict, where: str, default_system: str | None = None):
    prompt = field_value(row, "prompt", columns, where)
    response = field_value(row, "response", columns, where)
    system = field_value(row, "system", columns, where, required=False, allow_empty=True)
    msgs = _history(row, columns, where) + _turn(prompt, response)
    return Conversation(_with_system(system or default_system, msgs), _origin(row, columns), where)


def _content(value: Any) -> str | None:
    """A message's text: a string, or OpenAI-style parts [{type: text, text: ...}]."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    return None


def _roles(columns: dict) -> dict[str, str] | None:
    """Exact role tags (LLaMA-Factory style) when any is given, else None (lenient mapping)."""
    if not any(k in columns for k in ("user_tag", "assistant_tag", "system_tag")):
        return None
    return {columns.get("user_tag", "human"): "user",
            columns.get("assistant_tag", "gpt"): "assistant",
            columns.get("system_tag", "system"): "system",
            columns.get("function_tag", tools.CALL_ROLE): tools.CALL_ROLE,
            columns.get("observation_tag", "observation"): "tool"}


def _message(m: Any, i: int, where: str, key: str, columns: dict) -> dict:
    if not isinstance(m, dict):
        raise bad_row(where, f"item {i} must be an object", key)
    role_key, content_key = columns.get("role_tag"), columns.get("content_tag")
    role = m.get(role_key) if role_key else m.get("role", m.get("from"))
    raw = m.get(content_key) if content_key else m.get("content", m.get("value"))
    exact = _roles(columns)
    table = exact if exact is not None else SHAREGPT_ROLES
    name = role if exact is not None else (role.lower() if isinstance(role, str) else role)
    if not isinstance(role, str) or name not in table:
        known = "/".join(exact) if exact is not None else "system/user/assistant or human/gpt"
        raise bad_row(where, f"item {i}: unknown role {role!r} (expected {known})", key)
    role = table[name]
    calls = tools.tool_calls(m, i, where, key) if role == "assistant" else None
    content = "" if raw is None and calls else _content(raw)
    if content is None:
        raise bad_row(where, f"item {i}: content must be a string, got {type(raw).__name__}", key)
    if role == tools.CALL_ROLE:  # LLaMA-Factory: the call as JSON text
        return {"role": "assistant", "content": "",
                "tool_calls": tools.calls_from_text(content, i, where, key)}
    if role == "tool":
        return tools.result_message(m, content)
    return {"role": role, "content": content, **({"tool_calls": calls} if calls else {})}


def is_chat(value: Any) -> bool:
    """A list of message objects (TRL's "conversational" form of a column)."""
    return (isinstance(value, list) and bool(value) and isinstance(value[0], dict)
            and any(k in value[0] for k in ("role", "from")))


def message_list(raw: list, where: str, key: str, columns: dict) -> tuple[str | None, list]:
    """(leading system message, the other messages) of a list of message objects."""
    if not columns or _roles(columns) is None and "role_tag" not in columns \
            and "content_tag" not in columns:
        msgs = [{"role": m["role"], "content": m["content"]}  # what _message makes of them
                if type(m) is dict and len(m) == 2 and m.get("role") in _PLAIN_ROLES
                and type(m.get("content")) is str else _message(m, i, where, key, columns)
                for i, m in enumerate(raw)]
    else:
        msgs = [_message(m, i, where, key, columns) for i, m in enumerate(raw)]
    if msgs and msgs[0]["role"] == "system":
        return msgs[0]["content"], msgs[1:]
    return None, msgs


def parse_messages(row: dict, columns: dict, where: str) -> tuple[str | None, list[dict], str]:
    """(system, user/assistant messages, the column they came from), not yet turn-checked."""
    key = columns.get("messages", "messages")
    if key not in row and "messages" not in columns:
        key = "conversations" if "conversations" in row else key
    raw = field_value(row, key, {}, where, kind=list)
    inline, msgs = message_list(raw, where, key, columns)
    system = field_value(row, "system", columns, where, required=False, allow_empty=True)
    return inline or system, msgs, key


def from_messages(row: dict, columns: dict, where: str, default_system: str | None = None):
    """Chats, tool calls included: the ``tools`` column goes to the chat template."""
    system, msgs, key = parse_messages(row, columns, where)
    check_turns(msgs, where, key, with_tools=True)
    return Conversation(_with_system(system or default_system, msgs), _origin(row, columns), where,
                        tools.parse_tools(row, columns, where))


def check_turns(msgs: list[dict], where: str, key: str, last: str = "assistant",
                with_tools: bool = False) -> None:
    """Turns alternate user/assistant, end with ``last``, and no assistant turn is empty; with
    ``with_tools``, tool calls and results may come between (``tools.check_tool_turns``)."""
    if tools.has_tool_turns(msgs):
        if not with_tools:
            raise bad_row(where, "has tool calls or tool results, which are read in format "
                                 "'messages' only", key)
        return tools.check_tool_turns(msgs, where, key, last)
    if not msgs:
        raise bad_row(where, "has no user/assistant turns", key)
    for i, m in enumerate(msgs):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise bad_row(where, f"turn {i} is '{m['role']}' but '{want}' was expected (turns "
                                 "must alternate user/assistant after an optional system "
                                 "message)", key)
    if msgs[-1]["role"] != last:
        raise bad_row(where, f"the last turn must be the {last}'s", key)
    for i, m in enumerate(msgs):
        if not m["content"].strip():
            raise bad_row(where, f"turn {i}: empty {m['role']} message", key)


def from_prompt_completion(row: dict, columns: dict, where: str,
                           default_system: str | None = None):
    """TRL's prompt-completion rows: both strings (a user turn and the answer), or both lists of
    messages (the prompt ends with the user, the completion holds the assistant's answer)."""
    pkey, ckey = columns.get("prompt", "prompt"), columns.get("completion", "completion")
    prompt = field_value(row, "prompt", columns, where, kind=(str, list))
    completion = field_value(row, "completion", columns, where, kind=(str, list))
    system = field_value(row, "system", columns, where, required=False, allow_empty=True)
    if isinstance(prompt, str) and isinstance(completion, str):
        msgs = _history(row, columns, where) + _turn(prompt, completion)
        return Conversation(_with_system(system or default_system, msgs), _origin(row, columns),
                            where)
    if isinstance(prompt, str) or isinstance(completion, str):
        raise bad_row(where, "and the completion must both be strings or both be lists of "
                             "messages", pkey)
    inline, head = message_list(prompt, where, pkey, columns)
    extra, tail = message_list(completion, where, ckey, columns)
    if extra is not None:
        raise bad_row(where, "item 0: a system message belongs in the prompt", ckey)
    check_turns(head, where, pkey, last="user")
    check_turns(head + tail, where, ckey)
    return Conversation(_with_system(inline or system or default_system, head + tail),
                        _origin(row, columns), where)


def from_text(row: dict, columns: dict, where: str, default_system: str | None = None):
    return Text(field_value(row, "text", columns, where), where, _origin(row, columns))


CONVERTERS: dict[str, Callable[..., Any]] = {
    "alpaca": from_alpaca,
    "prompt_response": from_prompt_response,
    "prompt_completion": from_prompt_completion,
    "messages": from_messages,
    "text": from_text,
}

FORMAT_COLUMNS: dict[str, set[str]] = {
    "alpaca": {"instruction", "input", "output", "system", "history", "origin"},
    "prompt_response": {"prompt", "response", "system", "history", "origin"},
    "prompt_completion": {"prompt", "completion", "system", "history", "origin", *TAG_KEYS},
    "messages": {"messages", "system", "origin", "tools", *TAG_KEYS},
    "text": {"text", "origin"},
}


def converter(fmt: str, columns: dict, where: str = "data.format") -> Callable[..., Any]:
    """The converter for ``fmt``, after checking ``columns`` only names fields it knows."""
    convert = CONVERTERS.get(fmt)
    if convert is None:
        raise ConfigError(f"{where}: format '{fmt}' is not available (known: "
                          f"{', '.join(sorted(CONVERTERS))})")
    known = FORMAT_COLUMNS.get(fmt)
    unknown = sorted(set(columns) - known) if known else []
    if unknown:
        import difflib

        problems = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            tip = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"data.columns.{name}: not a field of format '{fmt}' (fields: "
                            f"{', '.join(sorted(known))}){tip}")
        raise ConfigError(problems)
    return convert
