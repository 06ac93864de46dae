"""The encoder's chunked, threaded tokenization (``batch_tokenize.TokenStream``) changes nothing:
with chunks much smaller than the batch, on worker threads or none, the rows equal the batch of
one; a shortcut disagreement found in a LATER chunk still sends the whole batch (earlier chunks
included) through Jinja; a Rust tokenizer that differs from the tokenizer's own call is caught
and the whole batch takes the tokenizer's call; a sampled text with offsets out of order makes
every text take the linear scan."""

from __future__ import annotations

import logging

import pytest

from lmforge.data import batch_tokenize, encode, labels
from lmforge.data.encode import Settings, encode_conversation, encode_conversations
from lmforge.data.types import Conversation
from tests.invariants.test_fast_encode import SETTINGS, _conversations

LENGTH_BRANCH = ("{%- for m in messages -%}{%- if m['content'] | length > 60 -%}LONG {% endif -%}"
                 "{{ m['role'] }}: {% generation %}{{ m['content'] }}{% endgeneration %}\n"
                 "{%- endfor -%}")


def _rows(convs, tokenizer, template, settings, **kw):
    paths: list[str] = []
    out = encode_conversations(convs, tokenizer, template, settings, paths=paths, **kw)
    return [(r.input_ids, r.labels, r.truncated, r.dropped) for r in out], paths


def _one_by_one(convs, tokenizer, template, settings):
    return [(r.input_ids, r.labels, r.truncated, r.dropped) for r in
            (encode_conversation(c, tokenizer, template, settings) for c in convs)]


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(encode, "CHUNK", 7)


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_small_chunks_on_threads_equal_the_batch_of_one(tiny_tokenizer, small_chunks, threads):
    convs = _conversations(90, seed=11)
    template = tiny_tokenizer.chat_template
    for settings in (SETTINGS[0], SETTINGS[3], SETTINGS[6]):  # incl. later rounds (over-long)
        rows, paths = _rows(convs, tiny_tokenizer, template, settings, threads=threads)
        assert rows == _one_by_one(convs, tiny_tokenizer, template, settings)
        assert paths.count("skeleton") > 60


def test_a_disagreement_in_a_later_chunk_renders_the_whole_batch_with_jinja(
        tiny_tokenizer, small_chunks, caplog):
    convs = [Conversation(tuple({"role": r, "content": f"short {r} {i} {j}"}
                                for j in range(1 + i % 3) for r in ("user", "assistant")))
             for i in range(60)]  # every content under the template's 60 characters
    # a shape no other conversation has (checked as the first of its shape), long enough for the
    # template's branch, in the 6th chunk
    turns = [{"role": r, "content": ("word " * 20 + "end") if r == "user" else "ok"}
             for _ in range(5) for r in ("user", "assistant")]
    convs.insert(40, Conversation(tuple(turns), where="late.jsonl:41"))
    with caplog.at_level(logging.WARNING, logger="lmforge.data.skeleton"):
        rows, paths = _rows(convs, tiny_tokenizer, LENGTH_BRANCH, Settings(), threads=2)
    assert "late.jsonl:41" in caplog.text
    assert paths == ["template"] * len(convs)
    assert rows == _one_by_one(convs, tiny_tokenizer, LENGTH_BRANCH, Settings())


class _Backend:
    """The Rust tokenizer, off by one token id."""

    def __init__(self, real):
        self.real = real

    def encode_batch(self, texts, add_special_tokens=False):
        out = self.real.encode_batch(texts, add_special_tokens=add_special_tokens)
        return [type("Enc", (), {"ids": [(i + 1) % 1000 for i in e.ids],
                                 "offsets": e.offsets})() for e in out]


class _Skewed:
    """A tokenizer whose backend disagrees with its own call."""

    def __init__(self, tok):
        self._tok = tok
        self.backend_tokenizer = _Backend(tok.backend_tokenizer)

    def __getattr__(self, name):
        return getattr(self._tok, name)

    def __call__(self, *args, **kwargs):
        return self._tok(*args, **kwargs)


def test_a_rust_tokenizer_that_differs_is_caught(tiny_tokenizer, small_chunks, caplog):
    convs = _conversations(50, seed=12)
    template = tiny_tokenizer.chat_template
    with caplog.at_level(logging.INFO, logger="lmforge.data.encode"):
        rows, _ = _rows(convs, _Skewed(tiny_tokenizer), template, SETTINGS[0], threads=2)
    assert "differs from the tokenizer's call" in caplog.text
    assert rows == _one_by_one(convs, tiny_tokenizer, template, SETTINGS[0])


def test_offsets_out_of_order_in_a_later_chunk_relabel_every_text(tiny_tokenizer, small_chunks,
                                                                  monkeypatch):
    convs = _conversations(80, seed=13)
    template = tiny_tokenizer.chat_template
    seen = []

    def ordered(offsets):  # the 3rd sampled text (in a later chunk) counts as out of order
        seen.append(1)
        return len(seen) != 3

    scans = []
    real_owners = labels.token_owners
    monkeypatch.setattr(batch_tokenize, "ordered", ordered)
    monkeypatch.setattr(labels, "token_owners", lambda o, s: scans.append(1) or real_owners(o, s))
    rows, _ = _rows(convs, tiny_tokenizer, template, SETTINGS[1], threads=2)
    assert len(scans) == len(convs)  # every text took the linear scan
    assert rows == _one_by_one(convs, tiny_tokenizer, template, SETTINGS[1])
