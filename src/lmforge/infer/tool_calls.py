"""Tool calls at inference: which tags a chat template writes around a call, and the calls parsed
back out of generated text.

The tags are not hard-coded: ``call_format`` renders a probe conversation (one assistant turn
calling ``probe_fn``) with the template, as training renders tool calls, and reads what surrounds
the call's JSON: ``<tool_call>`` / ``</tool_call>`` for ``chatml_tools`` and Qwen-style templates,
nothing for templates that write a bare JSON object. A template that ignores ``tools`` (plain
ChatML, SmolLM2's own) has no format: ``supports_tools`` is False and doors refuse ``tools``.

``parse(text, fmt)`` returns the text outside the calls and the calls in canonical form
(``{"type": "function", "function": {"name", "arguments": {...}}}``, as ``data/tools.py`` reads
them). Anything malformed (a body that is not JSON, no name, arguments that are not an object)
gives the whole text back as content and no calls: a model's broken call is shown, never a crash.
``openai_calls`` turns calls into OpenAI's response form (arguments as a JSON string, ids).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

PROBE_NAME, PROBE_ARG = "probe_fn", "probe_arg"
PROBE_TOOLS = [{"type": "function", "function": {
    "name": PROBE_NAME, "description": "probe",
    "parameters": {"type": "object", "properties": {PROBE_ARG: {"type": "string"}}}}}]
_PROBE_CALL = {"role": "assistant", "content": "", "tool_calls": [
    {"type": "function", "function": {"name": PROBE_NAME, "arguments": {PROBE_ARG: "v"}}}]}
_ARG_KEYS = ("arguments", "parameters")


@dataclass(frozen=True)
class CallFormat:
    open: str  # text before a call's JSON ("" when the template writes bare JSON)
    close: str  # text after it, before the end of the turn (may be "")


def supports_tools(template: str, tokenizer) -> bool:
    """True when the template writes the ``tools`` it is given into the prompt."""
    from lmforge.data.render import render_text

    msgs = [{"role": "user", "content": "Hi"}]
    try:
        text = render_text(msgs, template, tokenizer, True, PROBE_TOOLS)
    except Exception:  # a template that cannot render tools at all
        return False
    return PROBE_NAME in text


def call_format(template: str | None, tokenizer) -> CallFormat | None:
    """The tags around a tool call in ``template``, or None when it does not take tools."""
    from lmforge.data.render import render_spans, special_strings

    if not template or not supports_tools(template, tokenizer):
        return None
    try:
        text, spans = render_spans([{"role": "user", "content": "Hi"}, _PROBE_CALL], template,
                                   tokenizer, tools=PROBE_TOOLS)
    except Exception:
        return None
    if not spans:
        return None
    turn = text[spans[-1][0]:spans[-1][1]]
    at = turn.find(PROBE_NAME)
    if at < 0:
        return None
    decoder = json.JSONDecoder()
    for start in (k for k in range(at, -1, -1) if turn[k] == "{"):
        try:
            obj, end = decoder.raw_decode(turn, start)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("name") == PROBE_NAME:
            close = turn[end:]
            cut = [k for s in special_strings(tokenizer) if s and (k := close.find(s)) >= 0]
            return CallFormat(turn[:start].strip(), close[:min(cut, default=len(close))].strip())
    return None


def _call(body: str) -> dict | None:
    """A canonical call from a call's JSON text, or None when malformed."""
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    key = next((k for k in _ARG_KEYS if k in obj), None)
    args = obj.get(key, {}) if key else {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return {"type": "function", "function": {"name": obj["name"], "arguments": args}}


def parse(text: str, fmt: CallFormat | None) -> tuple[str, list[dict]]:
    """(content, calls) of generated ``text``; malformed calls give (text, [])."""
    if fmt is None:
        return text, []
    if not fmt.open:  # bare JSON: the whole answer is one call (or a list of calls)
        body = text.strip()
        if not body.startswith(("{", "[")):
            return text, []
        try:
            value = json.loads(body)
        except json.JSONDecodeError:
            return text, []
        calls = [_call(json.dumps(v)) for v in (value if isinstance(value, list) else [value])]
        return ("", calls) if calls and all(calls) else (text, [])
    calls, kept, at = [], [], 0
    while (k := text.find(fmt.open, at)) >= 0:
        kept.append(text[at:k])
        start = k + len(fmt.open)
        end = text.find(fmt.close, start) if fmt.close else -1
        stop = len(text) if end < 0 else end  # an unclosed last call ends with the text
        call = _call(text[start:stop])
        if call is None:
            return text, []
        calls.append(call)
        at = stop + (len(fmt.close) if end >= 0 else 0)
    if not calls:
        return text, []
    kept.append(text[at:])
    return "".join(kept).strip(), calls


def openai_calls(calls: list[dict], ids: bool = True) -> list[dict]:
    """Calls as OpenAI returns them: arguments as a JSON string, each with an ``id``."""
    out = []
    for call in calls:
        fn = call["function"]
        item = {"type": "function", "function": {
            "name": fn["name"], "arguments": json.dumps(fn["arguments"], ensure_ascii=False)}}
        if ids:
            item = {"id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}", **item}
        out.append(item)
    return out


def refuse_without(fmt: CallFormat | None, name: str) -> None:
    """Refuse tools for a template that would silently leave them out."""
    if fmt is None:
        from lmforge.errors import ModelError

        raise ModelError(f"the chat template of {name} does not take tools (it leaves them out "
                         "of the prompt, or writes no tool calls)", "use a tool-calling "
                         "template: --template chatml_tools (or the one the model was trained "
                         "with)")
