"""Encoding limits, pre-flight checks, the tokenized cache and the pipeline entry point, on the tiny
tokenizer (no model weights are loaded)."""

from __future__ import annotations

import copy
import logging

import pytest

from lmforge.config import validate
from lmforge.data import encoders, pipeline
from lmforge.data.encode import IGNORE, Settings, encode_conversation, encode_text
from lmforge.data.templates import resolve_template
from lmforge.data.types import Conversation, Text
from lmforge.errors import DataError
from tests.conftest import write_jsonl


@pytest.fixture(scope="module")
def chatml(tiny_tokenizer):
    return resolve_template("chatml", tiny_tokenizer)


def conv(*turns):
    roles = ["user", "assistant"] * len(turns)
    return Conversation(tuple({"role": r, "content": c} for r, c in zip(roles, turns)))


def trained_text(tok, enc):
    return tok.decode([x for x in enc.labels if x != IGNORE])


LONG = " ".join(["the answer of the question is one two three"] * 12)


def test_truncate_prompt_drops_whole_earlier_turns_first(tiny_tokenizer, chatml):
    c = conv(LONG, "first answer", "short question", "last answer")
    full = encode_conversation(c, tiny_tokenizer, chatml)
    last_only = encode_conversation(conv("short question", "last answer"), tiny_tokenizer, chatml)
    enc = encode_conversation(c, tiny_tokenizer, chatml,
                              Settings(max_length=len(last_only.input_ids) + 2))
    assert len(full.input_ids) > len(enc.input_ids)
    assert enc.truncated and enc.input_ids == last_only.input_ids  # whole turn gone, not cut
    assert trained_text(tiny_tokenizer, enc) == "last answer<|im_end|>"


def test_truncate_prompt_cuts_a_long_prompt_from_the_left(tiny_tokenizer, chatml):
    c = conv(LONG, "kept answer")
    full = encode_conversation(c, tiny_tokenizer, chatml)
    enc = encode_conversation(c, tiny_tokenizer, chatml, Settings(max_length=40))
    assert len(enc.input_ids) == 40 and enc.truncated
    assert enc.input_ids == full.input_ids[-40:]
    assert trained_text(tiny_tokenizer, enc) == "kept answer<|im_end|>"


def test_truncate_response_and_drop(tiny_tokenizer, chatml):
    c = conv("q", LONG)
    full = encode_conversation(c, tiny_tokenizer, chatml)
    enc = encode_conversation(c, tiny_tokenizer, chatml,
                              Settings(max_length=30, truncation="truncate_response"))
    assert enc.input_ids == full.input_ids[:30] and enc.labels == full.labels[:30]
    assert tiny_tokenizer.eos_token_id not in [x for x in enc.labels if x != IGNORE]
    dropped = encode_conversation(c, tiny_tokenizer, chatml, Settings(max_length=30,
                                                                      truncation="drop"))
    assert dropped.dropped


def test_source_and_target_limits(tiny_tokenizer, chatml):
    c = conv(LONG, LONG)
    full = encode_conversation(c, tiny_tokenizer, chatml)
    split = next(i for i, x in enumerate(full.labels) if x != IGNORE)
    enc = encode_conversation(c, tiny_tokenizer, chatml,
                              Settings(max_source_length=10, max_target_length=7))
    assert enc.input_ids == full.input_ids[split - 10:split + 7]
    assert sum(x != IGNORE for x in enc.labels) == 7


def test_pad_equal_to_eos_keeps_eos_trained(tiny_tokenizer, chatml):
    from lmforge.data.collate import PadCollator

    tok = copy.deepcopy(tiny_tokenizer)
    tok.pad_token = tok.eos_token
    assert tok.pad_token_id == tok.eos_token_id
    short = encode_conversation(conv("q", "a"), tok, chatml)
    longer = encode_conversation(conv("question", "a longer answer"), tok, chatml)
    assert short.labels.count(tok.eos_token_id) == 1
    batch = PadCollator(tok.pad_token_id)([short.row(), longer.row()])
    row = batch["labels"][0].tolist()
    assert row.count(tok.eos_token_id) == 1 and row[len(short.labels):] == [IGNORE] * (
        len(row) - len(short.labels))


def test_text_is_tokens_plus_eos_in_chunks(tiny_tokenizer):
    ids = tiny_tokenizer(LONG)["input_ids"] + [tiny_tokenizer.eos_token_id]
    expected = [ids[i:i + 16] for i in range(0, len(ids), 16)]
    if len(expected[-1]) < 2:  # a one-token tail trains nothing
        expected.pop()
    chunks = encode_text(Text(LONG), tiny_tokenizer, Settings(max_length=16))
    assert len(chunks) > 1 and [c.input_ids for c in chunks] == expected
    assert all(c.labels == c.input_ids for c in chunks)


def run_cfg(tmp_path, **data):
    data.setdefault("cache_dir", str(tmp_path / "cache"))
    return validate({"model": {"path": "builtin:tiny-llama"}, "data": data,
                     "train": {"output_dir": str(tmp_path / "out"), "batch_size": 2}})


def rows(n, long_prompt=False):
    return [{"instruction": (LONG if long_prompt else f"question {i}"), "output": f"answer {i}"}
            for i in range(n)]


def test_build_stats_and_eval_examples(tmp_path, tiny_tokenizer, chatml):
    path = write_jsonl(tmp_path / "t.jsonl", rows(10))
    built = pipeline.build(run_cfg(tmp_path, train=str(path), eval=0.2), tiny_tokenizer, chatml)
    s = built.stats
    for key in ("examples", "trained_tokens", "total_tokens", "zero_trained", "truncated",
                "dropped", "pad_fraction", "length_histogram", "eos_trained", "cache_hit"):
        assert key in s
    assert s["examples"] == len(built.train) == 8 and s["eval"]["examples"] == 2
    labels = built.train["labels"]
    assert s["trained_tokens"] == sum(sum(x != IGNORE for x in lab) for lab in labels)
    assert s["total_tokens"] == sum(len(x) for x in built.train["input_ids"])
    assert s["eos_trained"] == 8 and s["eos_missing"] == 0
    assert sum(b["count"] for b in s["length_histogram"]) == 8
    assert all(isinstance(e, Conversation) and e.answer.startswith("answer")
               for e in built.eval_examples)


def test_every_response_truncated_away_fails_before_training(tmp_path, tiny_tokenizer, chatml):
    path = write_jsonl(tmp_path / "t.jsonl", rows(4, long_prompt=True))
    cfg = run_cfg(tmp_path, train=str(path), max_length=32, truncation="truncate_response",
                  cache=False)
    with pytest.raises(DataError, match="no example has any trained token: 4 have every "
                                        "response truncated") as exc:
        pipeline.build(cfg, tiny_tokenizer, chatml)
    assert "max_length" in exc.value.hint


def test_some_zero_trained_are_removed_with_a_warning(tmp_path, tiny_tokenizer, chatml, caplog):
    path = write_jsonl(tmp_path / "t.jsonl", rows(3) + rows(2, long_prompt=True))
    cfg = run_cfg(tmp_path, train=str(path), max_length=32, truncation="truncate_response",
                  cache=False)
    with caplog.at_level(logging.WARNING):
        built = pipeline.build(cfg, tiny_tokenizer, chatml)
    assert built.stats["zero_trained"] == 2 and len(built.train) == 3
    assert "2 examples have no trained token" in caplog.text


def test_second_build_hits_the_cache(tmp_path, tiny_tokenizer, chatml, monkeypatch):
    path = write_jsonl(tmp_path / "t.jsonl", rows(6))
    cfg = run_cfg(tmp_path, train=str(path), eval=0.3)
    first = pipeline.build(cfg, tiny_tokenizer, chatml)
    assert first.stats["cache_hit"] is False

    def boom(*a, **k):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(encoders, "encode_rows", boom)
    monkeypatch.setattr(pipeline, "load_examples", boom)
    second = pipeline.build(cfg, tiny_tokenizer, chatml)
    assert second.stats["cache_hit"] is True
    assert second.train["input_ids"] == first.train["input_ids"]
    assert second.train["labels"] == first.train["labels"]
    assert [e.messages for e in second.eval_examples] == [e.messages for e in first.eval_examples]
    for key in ("examples", "trained_tokens", "pad_fraction"):
        assert second.stats[key] == first.stats[key]
    monkeypatch.undo()
    write_jsonl(path, rows(7))  # changed content -> a new key -> tokenized again
    assert pipeline.build(cfg, tiny_tokenizer, chatml).stats["cache_hit"] is False
    other = resolve_template("qwen", tiny_tokenizer)
    assert pipeline.build(cfg, tiny_tokenizer, other).stats["cache_hit"] is False


def test_parallel_encoding_equals_serial(tmp_path, tiny_tokenizer, chatml):
    path = write_jsonl(tmp_path / "t.jsonl", rows(300))
    serial = pipeline.build(run_cfg(tmp_path, train=str(path), cache=False), tiny_tokenizer,
                            chatml)
    forked = pipeline.build(run_cfg(tmp_path, train=str(path), cache=False, num_proc=2),
                            tiny_tokenizer, chatml)
    assert forked.train["input_ids"] == serial.train["input_ids"]
    assert forked.train["labels"] == serial.train["labels"]


def test_template_failure_names_the_row(tmp_path, tiny_tokenizer):
    template = tmp_path / "strict.jinja"
    template.write_text(
        "{% for m in messages %}{% if 'forbidden' in m.content %}"
        "{{ raise_exception('no forbidden words') }}{% endif %}"
        "{% if m.role == 'assistant' %}{% generation %}{{ m.content + eos_token }}"
        "{% endgeneration %}{% else %}{{ m.content + '\n' }}{% endif %}{% endfor %}")
    path = write_jsonl(tmp_path / "t.jsonl", rows(2) + [{"instruction": "a forbidden word",
                                                         "output": "x"}])
    tpl = resolve_template(str(template), tiny_tokenizer)
    with pytest.raises(DataError, match=r"t\.jsonl:3: .*no forbidden words"):
        pipeline.build(run_cfg(tmp_path, train=str(path), cache=False), tiny_tokenizer, tpl)
    built = pipeline.build(run_cfg(tmp_path, train=str(path), cache=False, skip_invalid=True),
                           tiny_tokenizer, tpl)
    assert len(built.train) == 2 and built.stats["skipped_invalid"] == 1


def test_pt_text_build(tmp_path, tiny_tokenizer):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": LONG}, {"text": "short doc"}])
    cfg = validate({"stage": "pt", "model": {"path": "builtin:tiny-llama"},
                    "data": {"train": str(path), "format": "text", "max_length": 32,
                             "cache": False}, "train": {"output_dir": str(tmp_path / "o")}})
    built = pipeline.build(cfg, tiny_tokenizer, None)
    assert built.stats["split_documents"] == 1
    assert all(ids == lab for ids, lab in zip(built.train["input_ids"], built.train["labels"]))
    assert built.stats["trained_fraction"] == 1.0
