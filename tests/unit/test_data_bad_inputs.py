"""Bad input that used to be accepted or misreported: cut-off JSON lists, trailing commas, wrapped
records, every row invalid with skip_invalid, identical pairs, KTO rows under sft, media; and
plain-text sources for pt (data.txt_split)."""

from __future__ import annotations

import json
import logging

import pytest

from lmforge.config import validate
from lmforge.data.pipeline import load_examples
from lmforge.data.preference import Pair
from lmforge.data.preference_build import pair_stats
from lmforge.data.read import UNDESIRABLE
from lmforge.data.sources import read_rows
from lmforge.errors import DataError
from tests.conftest import write_jsonl

ROW = {"instruction": "Say hi", "output": "hello"}


def cfg_for(tmp_path, stage="sft", **data):
    return validate({"stage": stage, "model": {"path": "builtin:tiny-llama"}, "data": data,
                     "train": {"output_dir": str(tmp_path / "out")}})


def test_json_list_cut_off_before_its_bracket_is_an_error(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([ROW, ROW, ROW], indent=2)[:-12])  # cut inside the last item
    with pytest.raises(DataError, match="malformed JSON"):
        list(read_rows(path))
    path.write_text(json.dumps([ROW, ROW], indent=2)[:-1])  # only the closing ] lost
    with pytest.raises(DataError, match="not closed: the file ends after 2 items") as exc:
        load_examples(cfg_for(tmp_path, train=str(path)))
    assert exc.value.line == 9


@pytest.mark.parametrize("text, reason, line", [
    ('[\n{"instruction": "a", "output": "b"},\n]\n', "a trailing comma after item 1", 3),
    ('[{"instruction": "a", "output": "b"},,\n{"instruction": "a", "output": "b"}]',
     "an empty item", 1),
    ('[{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": "b"}]',
     "expected ',' or ']' after item 1", 2),
    ('[{"instruction": "a", "output": "b"}]\n{"x": 1}\n', "text after the closing ']'", 2),
])
def test_malformed_json_lists_name_the_line(tmp_path, text, reason, line):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(DataError, match=reason.replace("(", r"\(").replace("[", r"\[")) as exc:
        list(read_rows(path))
    assert exc.value.line == line


def test_object_wrapping_records_among_other_keys_is_refused(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"version": 1, "data": [ROW, ROW]}))
    with pytest.raises(DataError) as exc:
        load_examples(cfg_for(tmp_path, train=str(path)))
    assert "expected a list of records; found an object with keys version, data" in str(exc.value)
    assert "'data'" in exc.value.hint
    # one key holding the records, or one record (a chat too), are still read
    path.write_text(json.dumps({"rows": [ROW, ROW]}))
    assert len(load_examples(cfg_for(tmp_path, train=str(path))).train) == 2
    chat = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path.write_text(json.dumps(chat))
    [(where, row)] = list(read_rows(path))
    assert row == chat and where.endswith(":1")


def test_skip_invalid_with_every_row_bad_gives_the_count_and_reasons(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"instruction": "a", "output": ""}\n{"instruction": "b", "output": 3}\n'
                    '{not json\n')
    with pytest.raises(DataError) as exc:
        load_examples(cfg_for(tmp_path, train=str(path), skip_invalid=True))
    msg = str(exc.value)
    assert "all 3 rows are invalid" in msg
    assert f"{path}:1: field 'output' is empty" in msg and "must be str, got int" in msg
    assert "malformed JSON" in msg and "data.format" in exc.value.hint


def test_identical_pairs_are_named_by_file_and_line(tiny_tokenizer, caplog):
    pairs = [Pair("p", "a<|im_end|>", "b<|im_end|>", where="f.jsonl:1"),
             Pair("p", "same<|im_end|>", "same<|im_end|>", where="f.jsonl:2"),
             Pair("q", "x<|im_end|>", "x<|im_end|>", where="f.jsonl:5")]
    with caplog.at_level(logging.WARNING):
        stats = pair_stats(pairs, tiny_tokenizer, 64)
    assert stats["identical_pairs"] == 2
    assert "2 pairs have chosen == rejected (no signal): f.jsonl:2, f.jsonl:5" in caplog.text
    with pytest.raises(DataError, match="every pair has chosen == rejected"):
        pair_stats(pairs[1:], tiny_tokenizer, 64)


def test_kto_rows_under_sft_are_counted_with_their_reason(tmp_path, tiny_tokenizer, caplog):
    from lmforge.data.pipeline import build

    rows = [{"prompt": f"q{i}", "completion": f"a{i}", "label": i % 2 == 0} for i in range(6)]
    path = write_jsonl(tmp_path / "kto.jsonl", rows)
    cfg = cfg_for(tmp_path, train=str(path), cache=False)
    with caplog.at_level(logging.WARNING):
        built = build(cfg, tiny_tokenizer, tiny_tokenizer.chat_template)
    assert built.stats["examples"] == 3
    assert built.stats["unused"] == {UNDESIRABLE: 3}
    assert f"3 {UNDESIRABLE} are not used" in caplog.text


@pytest.mark.parametrize("row, field, what", [
    ({"messages": [{"role": "user", "content": "<image>Who?"},
                   {"role": "assistant", "content": "A cat."}], "images": ["cat.jpg"]},
     "images", "media column"),
    ({"instruction": "Describe <video>", "output": "A cat."}, "instruction", "<video>"),
    ({"conversations": [{"from": "human", "value": "<image>Who?"},
                        {"from": "gpt", "value": "A cat."}]}, "conversations", "<image>"),
])
@pytest.mark.parametrize("fmt", ["auto", None])
def test_media_is_refused_never_trained_as_text(tmp_path, row, field, what, fmt):
    fmt = fmt or ("messages" if "instruction" not in row else "alpaca")
    path = write_jsonl(tmp_path / "m.jsonl", [row])
    with pytest.raises(DataError, match=what) as exc:
        load_examples(cfg_for(tmp_path, train=str(path), format=fmt))
    assert (exc.value.line, exc.value.field) == (1, field)
    assert "text only" in exc.value.hint


def test_empty_media_columns_are_fine(tmp_path):
    row = dict(ROW, images=[], videos=None)
    path = write_jsonl(tmp_path / "m.jsonl", [row])
    assert len(load_examples(cfg_for(tmp_path, train=str(path))).train) == 1


TXT = "First document,\nstill the first.\n\n\nSecond document.\n  \nThird.\n"


@pytest.mark.parametrize("split, docs, lines", [
    ("blank_line", ["First document,\nstill the first.", "Second document.", "Third."],
     [1, 5, 7]),
    ("line", ["First document,", "still the first.", "Second document.", "Third."],
     [1, 2, 5, 7]),
    ("file", [TXT.rstrip("\n")], [1]),
])
def test_txt_sources_for_pt(tmp_path, split, docs, lines, caplog):
    path = tmp_path / "wiki_demo.txt"
    path.write_text(TXT)
    with caplog.at_level(logging.INFO, logger="lmforge.data.read"):
        got = load_examples(cfg_for(tmp_path, "pt", train=str(path), txt_split=split)).train
    assert [e.text for e in got] == docs
    assert [e.where for e in got] == [f"{path}:{n}" for n in lines]
    assert "read as 'text'" in caplog.text
    with pytest.raises(DataError, match="stage sft reads"):
        load_examples(cfg_for(tmp_path, train=str(path)))


def test_txt_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"ok\n\nbad \xff byte\n")
    with pytest.raises(DataError, match="not valid UTF-8") as exc:
        load_examples(cfg_for(tmp_path, "pt", train=str(path)))
    assert exc.value.line == 3
