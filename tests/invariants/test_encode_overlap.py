"""Reading overlapped with tokenization changes nothing: conversations fed to the encoder as
uneven chunks give the rows of the whole list and of the batch of one; ``pipeline.build`` reading
a file chunk by chunk (``Streamed``) builds the dataset and statistics of the list path; a bad
row in a later chunk is reported with its file:line:field exactly as before, skipped rows are
counted, and a train error found while encoding still comes after the eval file's read errors;
the read shortcuts (no placeholder walk for rows without ``<``, plain messages kept as they are)
give what the full checks give."""

from __future__ import annotations

import json

import pytest

from lmforge.config import validate
from lmforge.data import encode, formats, pipeline, read
from lmforge.data.encode import encode_conversation, encode_conversations
from lmforge.errors import DataError
from tests.conftest import write_jsonl
from tests.invariants.test_fast_encode import SETTINGS, _conversations


def _rows(out):
    return [(r.input_ids, r.labels, r.truncated, r.dropped) for r in out]


def _uneven(items, sizes=(1, 5, 13, 0, 2, 29)):
    at, k = 0, 0
    while at < len(items):
        n = sizes[k % len(sizes)]
        yield items[at:at + n]
        at, k = at + n, k + 1


@pytest.mark.parametrize("threads", [0, 2])
def test_uneven_chunks_equal_the_list_and_the_batch_of_one(tiny_tokenizer, monkeypatch, threads):
    monkeypatch.setattr(encode, "CHUNK", 7)
    convs = _conversations(70, seed=21)
    template = tiny_tokenizer.chat_template
    for settings in (SETTINGS[0], SETTINGS[3], SETTINGS[6]):  # incl. later rounds (over-long)
        paths_list, paths_stream = [], []
        whole = encode_conversations(convs, tiny_tokenizer, template, settings, threads=threads,
                                     paths=paths_list)
        streamed = encode_conversations(_uneven(convs), tiny_tokenizer, template, settings,
                                        threads=threads, paths=paths_stream)
        one = [encode_conversation(c, tiny_tokenizer, template, settings) for c in convs]
        assert _rows(streamed) == _rows(whole) == _rows(one)
        assert paths_stream == paths_list and paths_list.count("skeleton") > 40


def _cfg(tmp_path, train, **data):
    return validate({"model": {"path": "builtin:tiny-llama"},
                     "data": {"train": str(train), "format": "messages", "cache": False,
                              "max_length": 64, **data},
                     "train": {"output_dir": str(tmp_path / "out"), "batch_size": 2}})


def _messages_rows(n, seed):
    return [{"messages": list(c.messages)} for c in _conversations(n, seed=seed)]


def test_build_reading_in_chunks_equals_the_list_path(tmp_path, tiny_tokenizer, monkeypatch):
    monkeypatch.setattr(read, "CHUNK", 9)
    monkeypatch.setattr(encode, "CHUNK", 7)
    rows = _messages_rows(60, 22)
    rows[17] = {"messages": "not a list"}  # skipped, and counted
    cfg = _cfg(tmp_path, write_jsonl(tmp_path / "t.jsonl", rows), skip_invalid=True)
    splits = pipeline.load_examples(cfg, stream=True)
    assert isinstance(splits.train, pipeline.Streamed)
    template = tiny_tokenizer.chat_template
    built = pipeline.build(cfg, tiny_tokenizer, template)
    listed = pipeline.load_examples(cfg)  # the list path, encoded as before
    ds, stats = pipeline.encode_split(cfg, listed.train, tiny_tokenizer, template,
                                      encode.Settings.from_config(cfg),
                                      listed.skipped["train"], "train")
    assert built.train.to_dict() == ds.to_dict()
    assert built.stats["skipped_invalid"] == stats["skipped_invalid"] == 1
    assert built.train["where"][17].endswith("t.jsonl:19")  # row 18 was skipped


def _error(fn):
    with pytest.raises(DataError) as info:
        fn()
    return str(info.value)


def test_a_bad_row_in_a_later_chunk_names_its_line_and_field(tmp_path, tiny_tokenizer,
                                                             monkeypatch):
    monkeypatch.setattr(read, "CHUNK", 8)
    rows = _messages_rows(40, 23)
    rows[30]["messages"][0] = {"role": "wizard", "content": "hi"}
    cfg = _cfg(tmp_path, write_jsonl(tmp_path / "t.jsonl", rows))
    streamed = _error(lambda: pipeline.build(cfg, tiny_tokenizer, tiny_tokenizer.chat_template))
    assert streamed == _error(lambda: pipeline.load_examples(cfg))
    assert "t.jsonl:31" in streamed and "messages" in streamed and "'wizard'" in streamed


BOOM = ("{%- for m in messages -%}{%- if m['content'] == 'boom' -%}{{ raise_exception('no boom') }}"
        "{%- endif -%}{{ m['role'] }}: {% if m['role'] == 'assistant' %}{% generation %}"
        "{{ m['content'] }}{% endgeneration %}{% else %}{{ m['content'] }}{% endif %}\n"
        "{%- endfor -%}")


def test_eval_read_errors_still_come_before_train_encoding_errors(tmp_path, tiny_tokenizer):
    rows = _messages_rows(12, 24)  # under MIN_BATCH: every row rendered by Jinja
    rows[5] = {"messages": [{"role": "user", "content": "q"},
                            {"role": "assistant", "content": "boom"}]}
    train = write_jsonl(tmp_path / "t.jsonl", rows)
    bad_eval = tmp_path / "e.jsonl"
    bad_eval.write_text(json.dumps(_messages_rows(1, 25)[0]) + "\n{not json\n", encoding="utf-8")
    cfg = _cfg(tmp_path, train, eval=str(bad_eval))
    message = _error(lambda: pipeline.build(cfg, tiny_tokenizer, BOOM))
    assert message == _error(lambda: pipeline.load_examples(cfg))
    assert "e.jsonl:2" in message and "malformed JSON" in message
    cfg = _cfg(tmp_path, train)  # without the eval file: the train row's render error
    message = _error(lambda: pipeline.build(cfg, tiny_tokenizer, BOOM))
    assert "t.jsonl:6" in message and "no boom" in message


@pytest.mark.parametrize("line", [
    '{"messages": [{"role": "user", "content": "see <image>"}, '
    '{"role": "assistant", "content": "ok"}]}',
    '{"messages": [{"role": "user", "content": "see \\u003cimage>"}, '
    '{"role": "assistant", "content": "ok"}]}',
    '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "ok"}], '
    '"images": ["a.png"]}'])
def test_media_is_refused_with_or_without_a_literal_angle_bracket(tmp_path, tiny_tokenizer,
                                                                  line):
    good = json.dumps(_messages_rows(1, 26)[0])
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([good, good, line, good]) + "\n", encoding="utf-8")
    message = _error(lambda: pipeline.load_examples(_cfg(tmp_path, path)))
    assert "t.jsonl:3" in message and ("placeholder <image>" in message or "media" in message)


def test_plain_messages_are_what_the_full_conversion_makes():
    raw = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
           {"role": "assistant", "content": "a"}, {"role": "User", "content": "x"},
           {"from": "gpt", "value": "y"}, {"role": "assistant", "content": [
               {"type": "text", "text": "parts"}]}, {"role": "user", "content": "z", "x": 1}]
    system, fast = formats.message_list(raw, "f.jsonl:1", "messages", {})
    full = [formats._message(m, i, "f.jsonl:1", "messages", {}) for i, m in enumerate(raw)]
    assert system == "s" and fast == full[1:] and len(fast) == 6
