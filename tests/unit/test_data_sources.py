"""Sources and formats: every file type, every row format, and errors that name file:line:field."""

from __future__ import annotations

import json

import pytest

from lmforge.config import validate
from lmforge.data.pipeline import load_examples
from lmforge.data.sources import iter_rows, read_rows
from lmforge.errors import ConfigError, DataError
from tests.conftest import write_jsonl

ROWS = [{"instruction": "Say hi", "input": "", "output": "hello", "system": None},
        {"instruction": "Add", "input": "1 1", "output": "2", "system": "Math."}]


def cfg_for(tmp_path, **data):
    return validate({"model": {"path": "builtin:tiny-llama"}, "data": data,
                     "train": {"output_dir": str(tmp_path / "out")}})


def msgs(ex):
    return [(m["role"], m["content"]) for m in ex.messages]


def test_every_file_type_reads_the_same_rows(tmp_path):
    import datasets

    write_jsonl(tmp_path / "a.jsonl", ROWS)
    (tmp_path / "a.json").write_text(json.dumps(ROWS, indent=2))
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": ROWS}))
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in ROWS))
    (tmp_path / "a.csv").write_text("instruction,input,output,system\nSay hi,,hello,\n"
                                    "Add,1 1,2,Math.\n")
    datasets.Dataset.from_list(ROWS).to_parquet(str(tmp_path / "a.parquet"))
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    expected = [msgs(e) for e in load_examples(cfg_for(tmp_path, train=str(tmp_path / "a.jsonl"))
                                               ).train]
    assert expected[1] == [("system", "Math."), ("user", "Add\n1 1"), ("assistant", "2")]
    for name in ("a.json", "wrapped.json", "lines.json", "a.csv", "a.parquet", "saved"):
        got = load_examples(cfg_for(tmp_path, train=str(tmp_path / name))).train
        assert [msgs(e) for e in got] == expected, name


def test_directory_of_files_and_json_item_lines(tmp_path):
    folder = tmp_path / "folder"
    write_jsonl(folder / "1.jsonl", ROWS[:1])
    (folder / "2.json").write_text(json.dumps(ROWS[1:], indent=2))
    got = load_examples(cfg_for(tmp_path, train=str(folder))).train
    assert len(got) == 2
    where = [w for w, _ in read_rows(folder / "2.json")]
    assert where == [f"{folder / '2.json'}:2"]  # item starts on line 2 of the indented list


@pytest.mark.parametrize("content, line, field, reason", [
    ('{"instruction": "a", "output": "b"}\n{"instruction": "a", "output": \n', 2, None,
     "malformed JSON"),
    ('{"instruction": "a", "output": "b"}\n\n{"instruction": "a"}\n', 3, "output", "missing"),
    ('{"instruction": "a", "output": 7}\n', 1, "output", "must be str, got int"),
    ('{"instruction": "a", "output": "   "}\n', 1, "output", "is empty"),
    ('[1, 2]\n', 1, None, "expected a JSON object"),
    ('{"instruction": "a", "output": "b", "history": [["x"]]}\n', 1, "history", "pair"),
    ('{"instruction": "a", "output": "b", "history": ["q"]}\n', 1, "history", "even length"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, content, line, field, reason):
    path = tmp_path / "train.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as exc:
        load_examples(cfg_for(tmp_path, train=str(path)))
    err = exc.value
    assert (err.file, err.line, err.field) == (str(path), line, field)
    assert reason in err.message
    prefix = f"{path}:{line}: " + (f"field '{field}' " if field else "")
    assert err.message.startswith(prefix)


def test_invalid_utf8_and_csv_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"instruction": "a", "output": "b"}\n{"instruction": "\xff"}\n')
    rows = list(iter_rows(path))
    assert isinstance(rows[1][1], DataError) and rows[1][1].line == 2
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('instruction,output\n"multi\nline",ok\nx,\n')
    with pytest.raises(DataError) as exc:
        load_examples(cfg_for(tmp_path, train=str(csv_path)))
    assert (exc.value.line, exc.value.field) == (4, "output")  # quoted cell spans lines 2-3


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_examples(cfg_for(tmp_path, train=str(tmp_path / "nope.jsonl")))
    (tmp_path / "x.xml").write_text("<hi/>")
    with pytest.raises(DataError, match="unsupported file type '.xml'"):
        load_examples(cfg_for(tmp_path, train=str(tmp_path / "x.xml")))


def test_skip_invalid_drops_and_counts(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n{bad json\n{"instruction": "c"}\n'
                    '{"instruction": "d", "output": "e"}\n')
    splits = load_examples(cfg_for(tmp_path, train=str(path), skip_invalid=True))
    assert len(splits.train) == 2 and splits.skipped["train"] == 2


def test_messages_openai_sharegpt_and_history_forms(tmp_path):
    rows = [{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"},
                          {"role": "assistant", "content": "a1"}]},
            {"conversations": [{"from": "human", "value": "u1"}, {"from": "gpt", "value": "a1"},
                               {"from": "human", "value": "u2"}, {"from": "gpt", "value": "a2"}],
             "system": "S2"}]
    write_jsonl(tmp_path / "m.jsonl", rows)
    got = load_examples(cfg_for(tmp_path, train=str(tmp_path / "m.jsonl"),
                                format="messages")).train
    assert msgs(got[0]) == [("system", "S"), ("user", "u1"), ("assistant", "a1")]
    assert msgs(got[1])[0] == ("system", "S2") and len(got[1].messages) == 5
    write_jsonl(tmp_path / "p.jsonl", [
        {"q": "p", "a": "r", "history": ["h1", "g1"]},
        {"q": "p", "a": "r", "history": [["h1", "g1"]]}])
    got = load_examples(cfg_for(tmp_path, train=str(tmp_path / "p.jsonl"),
                                format="prompt_response",
                                columns={"prompt": "q", "response": "a"})).train
    assert msgs(got[0]) == msgs(got[1]) == [("user", "h1"), ("assistant", "g1"), ("user", "p"),
                                            ("assistant", "r")]


@pytest.mark.parametrize("messages, reason", [
    ([{"role": "user", "content": "u"}], "last turn must be the assistant"),
    ([{"role": "assistant", "content": "a"}], "turn 0 is 'assistant'"),
    ([{"role": "user", "content": "u"}, {"role": "assistant", "content": " "}], "empty assistant"),
    ([{"role": "wizard", "content": "u"}], "unknown role 'wizard'"),
    ([{"role": "user", "content": 3}], "content must be a string"),
])
def test_bad_messages(tmp_path, messages, reason):
    write_jsonl(tmp_path / "m.jsonl", [{"messages": messages}])
    with pytest.raises(DataError, match=reason) as exc:
        load_examples(cfg_for(tmp_path, train=str(tmp_path / "m.jsonl"), format="messages"))
    assert exc.value.field == "messages" and exc.value.line == 1


def test_unknown_column_key_is_a_did_you_mean_config_error(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    with pytest.raises(ConfigError, match="did you mean 'instruction'"):
        load_examples(cfg_for(tmp_path, train=str(tmp_path / "a.jsonl"),
                              columns={"instructoin": "q"}))


def test_text_format_and_origin(tmp_path):
    write_jsonl(tmp_path / "t.jsonl", [{"body": "Some text.", "origin": {"id": 3}}])
    got = load_examples(cfg_for(tmp_path, train=str(tmp_path / "t.jsonl"), format="text",
                                columns={"text": "body"})).train
    assert got[0].text == "Some text." and got[0].origin == {"id": 3}
