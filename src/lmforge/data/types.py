"""Canonical example types every source row is converted to, before any tokenization."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Conversation:
    """A chat: ``messages`` alternate user/assistant after an optional system message."""

    messages: tuple[dict[str, str], ...]
    origin: dict[str, Any] = field(default_factory=dict)
    where: str = ""  # "file:line" of the source row, for error messages

    def as_list(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.messages]


@dataclass(frozen=True)
class Text:
    """Raw text for pretraining."""

    text: str
    where: str = ""
