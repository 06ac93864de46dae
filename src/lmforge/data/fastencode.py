"""Which conversations the encoder renders through the skeleton shortcut.

There is one encoder, ``encode.encode_conversations`` (batch-native; ``encode_conversation`` is
the batch of one, which never takes the shortcut). ``encode_batch`` runs it on a batch and keeps
the rows whose text came from the skeleton (``skeleton.py``), so
tests/invariants/test_fast_encode.py can compare exactly those with the batch of one: ids,
labels, truncated and dropped flags.
"""

from __future__ import annotations

from lmforge.data.encode import MIN_BATCH, Encoded, Settings, encode_conversations
from lmforge.data.skeleton import template_markers
from lmforge.data.types import Conversation

__all__ = ["encode_batch", "template_markers"]


def encode_batch(examples: list, tokenizer, template: str | None,
                 settings: Settings) -> dict[int, Encoded]:
    """{index: Encoded} of the Conversation examples rendered by the skeleton shortcut (empty
    when the batch is small, the template unusable for it, or a verification disagreed)."""
    where = [i for i, ex in enumerate(examples) if type(ex) is Conversation]
    if not template or len(where) < MIN_BATCH:
        return {}
    paths: list[str] = []
    rows = encode_conversations([examples[i] for i in where], tokenizer, template, settings,
                                errors="return", paths=paths)
    return {i: row for i, row, path in zip(where, rows, paths) if path == "skeleton"}
