"""Convert source rows into canonical ``Conversation`` / ``Text`` examples (pure functions).

A bad row raises ``DataError`` naming its location and field. ``columns`` maps canonical field
names to the names used in the user's files (``{"instruction": "question"}``).
"""

from __future__ import annotations

from typing import Any, Callable

from lmforge.data.types import Conversation, Text
from lmforge.errors import DataError

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "system": "system", "model": "assistant", "bot": "assistant"}


def _field(row: dict, name: str, columns: dict, where: str, required: bool = True,
           kind: type | tuple = str, allow_empty: bool = False):
    key = columns.get(name, name)
    if key not in row or row[key] is None:
        if required:
            raise DataError("missing", where, field=key)
        return None
    value = row[key]
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(f"must be {want}, got {type(value).__name__}", where, field=key)
    if isinstance(value, str) and not allow_empty and not value.strip():
        raise DataError("is empty", where, field=key)
    return value


def _split(where: str) -> tuple[str, int | None]:
    file, _, line = where.rpartition(":")
    return (file, int(line)) if line.isdigit() else (where, None)


def _history(row: dict, columns: dict, where: str) -> list[dict[str, str]]:
    hist = _field(row, "history", columns, where, required=False, kind=list)
    if not hist:
        return []
    msgs: list[dict[str, str]] = []
    key = columns.get("history", "history")
    if all(isinstance(h, (list, tuple)) for h in hist):
        for i, pair in enumerate(hist):
            if len(pair) != 2 or not all(isinstance(x, str) for x in pair):
                raise DataError(f"item {i} must be a [user, assistant] pair of strings",
                                where, field=key)
            msgs += [{"role": "user", "content": pair[0]},
                     {"role": "assistant", "content": pair[1]}]
    elif all(isinstance(h, str) for h in hist):
        if len(hist) % 2:
            raise DataError(f"a flat history must alternate user/assistant and have an even "
                            f"length (got {len(hist)} items)", where, field=key)
        for i, text in enumerate(hist):
            msgs.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    else:
        raise DataError("must be a list of [user, assistant] pairs or a flat list of strings",
                        where, field=key)
    return msgs


def _with_system(system: str | None, msgs: list[dict]) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + msgs


def from_alpaca(row: dict, columns: dict, where: str, default_system: str | None = None):
    instruction = _field(row, "instruction", columns, where)
    extra = _field(row, "input", columns, where, required=False, allow_empty=True) or ""
    output = _field(row, "output", columns, where)
    system = _field(row, "system", columns, where, required=False) or default_system
    prompt = instruction + ("\n" + extra if extra.strip() else "")
    msgs = _history(row, columns, where) + [{"role": "user", "content": prompt},
                                            {"role": "assistant", "content": output}]
    return Conversation(tuple(_with_system(system, msgs)), _origin(row, columns), where)


def from_prompt_response(row: dict, columns: dict, where: str, default_system: str | None = None):
    prompt = _field(row, "prompt", columns, where)
    response = _field(row, "response", columns, where)
    system = _field(row, "system", columns, where, required=False) or default_system
    msgs = _history(row, columns, where) + [{"role": "user", "content": prompt},
                                            {"role": "assistant", "content": response}]
    return Conversation(tuple(_with_system(system, msgs)), _origin(row, columns), where)


def _message(m: Any, i: int, where: str, key: str) -> dict[str, str]:
    if not isinstance(m, dict):
        raise DataError(f"item {i} must be an object", where, field=key)
    role = m.get("role", m.get("from"))
    content = m.get("content", m.get("value"))
    if not isinstance(role, str) or role.lower() not in SHAREGPT_ROLES:
        raise DataError(f"item {i}: unknown role {role!r} (use system/user/assistant or "
                        "human/gpt)", where, field=key)
    if not isinstance(content, str):
        raise DataError(f"item {i}: content must be a string", where, field=key)
    return {"role": SHAREGPT_ROLES[role.lower()], "content": content}


def from_messages(row: dict, columns: dict, where: str, default_system: str | None = None):
    key = columns.get("messages", "messages")
    if key not in row and "conversations" in row and "messages" not in columns:
        key = "conversations"
    raw = _field(row, key, {}, where, kind=list)
    msgs = [_message(m, i, where, key) for i, m in enumerate(raw)]
    system = _field(row, "system", columns, where, required=False)
    if msgs and msgs[0]["role"] == "system":
        system, msgs = msgs[0]["content"], msgs[1:]
    check_turns(msgs, where, key)
    return Conversation(tuple(_with_system(system or default_system, msgs)),
                        _origin(row, columns), where)


def check_turns(msgs: list[dict], where: str, key: str) -> None:
    if not msgs:
        raise DataError("has no user/assistant turns", where, field=key)
    for i, m in enumerate(msgs):
        want = "user" if i % 2 == 0 else "assistant"
        if m["role"] != want:
            raise DataError(f"turn {i} is '{m['role']}' but '{want}' was expected (turns must "
                            "alternate user/assistant after an optional system message)",
                            where, field=key)
    if msgs[-1]["role"] != "assistant":
        raise DataError("the last turn must be the assistant's", where, field=key)
    for i, m in enumerate(msgs):
        if m["role"] == "assistant" and not m["content"].strip():
            raise DataError(f"turn {i}: empty assistant response", where, field=key)


def from_text(row: dict, columns: dict, where: str, default_system: str | None = None):
    return Text(_field(row, "text", columns, where), where)


def _origin(row: dict, columns: dict) -> dict:
    key = columns.get("origin", "origin")
    value = row.get(key)
    return value if isinstance(value, dict) else ({"origin": value} if value is not None else {})


CONVERTERS: dict[str, Callable[..., Conversation | Text]] = {
    "alpaca": from_alpaca,
    "prompt_response": from_prompt_response,
    "messages": from_messages,
    "text": from_text,
}
