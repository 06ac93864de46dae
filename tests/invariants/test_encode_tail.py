"""The sample check of the Rust tokenizer against the tokenizer's own call runs on the worker
threads, chunk by chunk (not on the main thread once everything is tokenized), and still catches
a difference that only one sampled text of a LATER chunk shows."""

from __future__ import annotations

import logging
import threading

from lmforge.data import batch_tokenize, encode
from lmforge.data.encode import encode_conversation, encode_conversations
from lmforge.data.types import Conversation
from tests.invariants.test_fast_encode import SETTINGS, _conversations


def _rows(out):
    return [(r.input_ids, r.labels, r.truncated, r.dropped) for r in out]


def test_the_sample_check_runs_on_the_worker_threads(tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(encode, "CHUNK", 7)
    real, callers = batch_tokenize.reference, []

    def reference(tokenizer, texts):
        callers.append((threading.current_thread() is threading.main_thread(), len(texts)))
        return real(tokenizer, texts)

    monkeypatch.setattr(batch_tokenize, "reference", reference)
    convs = _conversations(80, seed=21)
    template = tiny_tokenizer.chat_template
    out = encode_conversations(convs, tiny_tokenizer, template, SETTINGS[0], threads=2)
    on_main = [n for main, n in callers if main]
    assert on_main == [1]  # only the first call (it resets the backend's truncation/padding)
    sampled = sum(n for main, n in callers if not main)
    assert sampled == len(range(0, 80, batch_tokenize.VERIFY_EVERY))  # every sampled text
    assert _rows(out) == _rows(encode_conversation(c, tiny_tokenizer, template, SETTINGS[0])
                               for c in convs)


def test_a_difference_in_a_later_chunk_sample_is_caught(tiny_tokenizer, monkeypatch, caplog):
    monkeypatch.setattr(encode, "CHUNK", 7)
    real = batch_tokenize.reference
    convs = _conversations(70, seed=22)
    convs[64] = Conversation(({"role": "user", "content": "the odd one"},
                              {"role": "assistant", "content": "differs here"}))

    def reference(tokenizer, texts):  # the tokenizer's call disagrees on one late text only
        ids, offsets = real(tokenizer, texts)
        return [x[:-1] if "the odd one" in t else x for x, t in zip(ids, texts)], offsets

    monkeypatch.setattr(batch_tokenize, "reference", reference)
    template = tiny_tokenizer.chat_template
    with caplog.at_level(logging.INFO, logger="lmforge.data.encode"):
        encode_conversations(convs, tiny_tokenizer, template, SETTINGS[0], threads=2)
    assert "differs from the tokenizer's call" in caplog.text
