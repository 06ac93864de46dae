"""Prompts for the preference and RL stages, and prompt-only data (``data.format: prompt``).

The prompt part of a row is, in order of precedence, ``messages`` (a chat ending with a user
turn; ShareGPT ``conversations`` too), ``prompt`` (+ ``history``/``system``) or ``instruction`` +
``input`` (+ ``history``/``system``). It is parsed by the SFT converters of
``lmforge.data.formats`` (with a stand-in answer), so validation and column mapping are the same
as for SFT. Prompt-only rows keep every other column (a gold answer, a target...) as ``extras``,
which PPO/GRPO pass to the reward functions by name.

Rendering is separate (``render_prompt`` / ``render_completion``) and uses the run's chat template
with ``add_generation_prompt``: the policy is trained on the text it will see when served.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lmforge.data import formats
from lmforge.data.encode import render
from lmforge.data.sources import bad_row
from lmforge.data.templates import render_prompt
from lmforge.data.types import EXAMPLE_TYPES

_ANSWER = "__lmforge_answer__"  # private column holding a stand-in answer for the SFT converters
PROMPT_FIELDS = ("messages", "prompt", "instruction", "input", "system", "history", "origin")


def _key(name: str, columns: dict) -> str:
    return columns.get(name, name) or name


def prompt_kind(row: dict, columns: dict) -> str | None:
    """Which prompt form a row uses: 'messages', 'prompt', 'instruction' or None."""
    if _key("messages", columns) in row or ("conversations" in row and "messages" not in columns):
        return "messages"
    for name in ("prompt", "instruction"):
        if _key(name, columns) in row:
            return name
    return None


def prompt_messages(row: dict, columns: dict, where: str,
                    default_system: str | None = None) -> tuple[dict[str, str], ...]:
    """The chat that precedes the answer: system?, (user, assistant)*, user."""
    kind = prompt_kind(row, columns)
    if kind is None:
        names = ", ".join(_key(k, columns) for k in ("messages", "prompt", "instruction"))
        raise bad_row(where, f"has no prompt (expected one of: {names}; map yours with "
                             "data.columns)", _key("prompt", columns))
    key = _key("prompt", columns)
    if kind == "messages" or kind == "prompt" and isinstance(row.get(key), list):
        if kind == "messages":
            system, msgs, key = formats.parse_messages(row, columns, where)
        else:  # TRL's conversational prompt: a list of messages
            system, msgs = formats.message_list(row[key], where, key, columns)
            system = system or formats.field_value(row, "system", columns, where,
                                                   required=False, allow_empty=True)
        formats.check_turns(msgs, where, key, last="user")
        system = system or default_system
        return tuple(([{"role": "system", "content": system}] if system else []) + msgs)
    answer = "output" if kind == "instruction" else "response"
    convert = formats.from_alpaca if kind == "instruction" else formats.from_prompt_response
    conv = convert(dict(row, **{_ANSWER: "x"}), dict(columns, **{answer: _ANSWER}), where,
                   default_system)
    return conv.messages[:-1]


def prompt_columns(columns: dict) -> set[str]:
    """Names (in the user's files) of the columns that make up the prompt."""
    return {_key(k, columns) for k in PROMPT_FIELDS} | {"conversations"}


@dataclass(frozen=True)
class PromptExample:
    """A prompt for online RL with the row's other columns (for the reward functions)."""

    messages: tuple[dict[str, str], ...]
    extras: dict[str, Any] = field(default_factory=dict)
    where: str = ""

    def to_dict(self) -> dict:
        return {"type": "prompt", "messages": list(self.messages), "extras": self.extras,
                "where": self.where}


def from_prompt(row: dict, columns: dict, where: str, default_system: str | None = None):
    """data.format prompt; SFT rows work too: their answer becomes an extra column (a gold)."""
    msgs = prompt_messages(row, columns, where, default_system)
    used = prompt_columns(columns)
    return PromptExample(msgs, {k: v for k, v in row.items() if k not in used}, where)


def render_completion(messages, completion: str, template: str, tokenizer, prompt_text: str,
                      where: str = "") -> str:
    """The answer as the template writes it after ``prompt_text``, end-of-turn token included
    (what the model has to generate); anything after the turn (a newline) is left out."""
    text, spans = render(list(messages) + [{"role": "assistant", "content": completion}],
                         template, tokenizer)
    if not text.startswith(prompt_text):
        raise bad_row(where or "row", "the chat template writes the prompt differently with "
                                      "and without the answer, so the answer cannot be cut out")
    if spans and spans[-1][0] >= len(prompt_text):
        return text[spans[-1][0]:spans[-1][1]]
    return text[len(prompt_text):].rstrip("\n")


def strip_auto_bos(text: str, tokenizer) -> str:
    """Drop a leading BOS when the tokenizer adds BOS by itself: trl tokenizes rendered strings
    with special tokens on, and a template that writes BOS would then give it twice."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or not text.startswith(bos):
        return text
    ids = tokenizer("a")["input_ids"]
    return text[len(bos):] if ids and ids[0] == tokenizer.bos_token_id else text


def prompt_text(messages, template: str, tokenizer) -> str:
    return render_prompt(list(messages), template, tokenizer)


def raw_prompt_text(messages, tokenizer, where: str = "") -> str:
    """A raw-text prompt (``prompt_template: raw``): the row's single user text, which the model
    continues, with the BOS the tokenizer would add itself (the ids are taken without special
    tokens, like rendered prompts). A system prompt or earlier turns have no raw form."""
    msgs = list(messages)
    if len(msgs) != 1 or msgs[0].get("role") != "user":
        roles = ", ".join(str(m.get("role")) for m in msgs)
        raise bad_row(where or "row", f"a raw prompt is one text; this row is a chat ({roles}): "
                      "remove its system prompt and history, or use prompt_template: chat")
    text = str(msgs[0]["content"])
    bos = getattr(tokenizer, "bos_token", None)
    ids = tokenizer("a")["input_ids"] if bos else []
    return bos + text if ids and ids[0] == tokenizer.bos_token_id else text


def turn_template(style: str, template: str | None) -> str | None:
    """The template whose end-of-turn token ends a ppo/grpo completion: none for raw prompts
    (a continuation ends at EOS or the token limit)."""
    return None if style == "raw" else template


def rl_prompt_text(example, style: str, template: str, tokenizer) -> str:
    """The prompt of a ppo/grpo example as the policy sees it: rendered with the chat template
    (style ``chat``) or the raw text it continues (``raw``)."""
    if style == "raw":
        return raw_prompt_text(example.messages, tokenizer, example.where)
    return prompt_text(example.messages, template, tokenizer)


def _register() -> None:
    formats.CONVERTERS["prompt"] = from_prompt
    formats.FORMAT_COLUMNS["prompt"] = {*PROMPT_FIELDS, *formats.TAG_KEYS}
    EXAMPLE_TYPES["prompt"] = lambda d: PromptExample(tuple(d["messages"]), d.get("extras") or {},
                                                      d.get("where", ""))


_register()
