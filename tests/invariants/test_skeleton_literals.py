"""The rendering shortcut never hides a template's branch on a content's exact value: a content
equal to one of the template's string literals takes Jinja, even when it is not one of the
sampled conversations that Jinja re-renders anyway."""

from __future__ import annotations

import pytest

from lmforge.data.encode import Settings, encode_conversations
from lmforge.data.render import TemplateError, TemplateRenderError
from lmforge.data.skeleton import template_literals
from lmforge.data.types import Conversation
from tests.invariants.test_encode_overlap import BOOM


def _convs(n: int, answer_at: dict[int, str]) -> list[Conversation]:
    return [Conversation(({"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": answer_at.get(i, f"answer {i}")}),
                         where=f"t.jsonl:{i + 1}") for i in range(n)]


def test_template_literals():
    assert {"boom", "no boom", "assistant"} <= template_literals(BOOM)


def test_a_content_equal_to_a_literal_is_rendered_by_jinja(tiny_tokenizer, monkeypatch):
    from lmforge.data import skeleton

    paths: list[str] = []
    encode_conversations(_convs(40, {}), tiny_tokenizer, BOOM, Settings(), paths=paths)
    assert paths.count("skeleton") > 30  # the shortcut is in use for this template
    # row 21 is neither the first of its shape nor a VERIFY_EVERY-th one
    with pytest.raises((TemplateRenderError, TemplateError)) as err:
        encode_conversations(_convs(40, {20: "boom"}), tiny_tokenizer, BOOM, Settings())
    assert "no boom" in str(err.value)
    # without the guard the shortcut renders row 21 and the template's error is never raised
    monkeypatch.setattr(skeleton, "template_literals", lambda template: frozenset())
    rows = encode_conversations(_convs(40, {20: "boom"}), tiny_tokenizer, BOOM, Settings())
    assert len(rows) == 40
