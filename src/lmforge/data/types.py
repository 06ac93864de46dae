"""Canonical example types every source row is converted to, before any tokenization.

``to_dict`` / ``from_dict`` give a JSON-able form (the tokenized-dataset cache stores the eval
examples that way). Other example types (preference, prompt-only) register themselves in
``EXAMPLE_TYPES`` so the cache can restore them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversation:
    """A chat: ``messages`` alternate user/assistant after an optional system message; with
    tool calling, assistant turns may carry ``tool_calls`` and ``tool`` results follow them, and
    ``tools`` (JSON schemas) is passed to the chat template (data/tools.py)."""

    messages: tuple[dict[str, Any], ...]
    origin: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # "file:line" of the source row, for error messages
    tools: tuple[dict, ...] | None = None

    def as_list(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.messages]

    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages[0]["role"] == "system" else None

    def prompt_messages(self) -> list[dict[str, str]]:
        """Everything before the last assistant turn (what a model is asked at inference)."""
        msgs = self.as_list()
        return msgs[:-1] if msgs and msgs[-1]["role"] == "assistant" else msgs

    @property
    def answer(self) -> str:
        """The last assistant message (the reference answer for generation metrics)."""
        last = self.messages[-1]
        return last["content"] if last["role"] == "assistant" else ""

    def to_dict(self) -> dict:
        out = {"type": "conversation", "messages": self.as_list(), "origin": self.origin,
               "where": self.where}
        if self.tools:
            out["tools"] = list(self.tools)
        return out


@dataclass(frozen=True)
class Text:
    """Raw text for pretraining."""

    text: str
    where: str = ""
    origin: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"type": "text", "text": self.text, "where": self.where, "origin": self.origin}


def _conversation(d: dict) -> Conversation:
    tools = d.get("tools")
    return Conversation(tuple(d["messages"]), d.get("origin") or {}, d.get("where", ""),
                        tuple(tools) if tools else None)


def _text(d: dict) -> Text:
    return Text(d["text"], d.get("where", ""), d.get("origin") or {})


EXAMPLE_TYPES = {"conversation": _conversation, "text": _text}


def from_dict(d: dict):
    return EXAMPLE_TYPES[d["type"]](d)
