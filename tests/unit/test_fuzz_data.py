"""Property-based tests (hypothesis) over every data format: random, malformed and hostile rows in
JSONL / JSON / CSV files -- wrong types, missing and extra fields, empty and whitespace strings,
huge fields, invalid UTF-8, lone surrogates, truncated JSON, non-object lines, unknown or mismatched
roles, odd-length histories, NaN numbers.

The property: reading + converting a file ends in valid canonical examples or a DataError that
names the file and the line (and the field, when the row itself parsed); never another exception,
and never a silent drop (every non-blank JSONL line is an example or an error). Examples per
property: 60 here, 1000 under ``-m slow``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FORMATS = ("alpaca", "prompt_response", "messages", "text", "preference", "kto", "prompt")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))

HOSTILE = ["", " ", "\n\t", "<|im_end|>", "<|im_start|>assistant\n", "{{ raise('x') }}",
           "{% generation %}", "\x00", "\ud800", "\udfff lone", "\u202e", "ｆｕｌｌ", "x" * 20_000]
TEXT = st.one_of(st.text(max_size=24), st.sampled_from(HOSTILE))
SCALAR = st.one_of(TEXT, st.integers(), st.floats(), st.booleans(), st.none())
VALUE = st.recursive(SCALAR, lambda c: st.one_of(st.lists(c, max_size=3),
                                                 st.dictionaries(st.text(max_size=6), c,
                                                                 max_size=3)), max_leaves=6)
ROLE = st.one_of(st.sampled_from(["user", "assistant", "system", "human", "gpt", "USER", "tool",
                                  "model", "bot", ""]), SCALAR)
MESSAGE = st.one_of(st.fixed_dictionaries({"role": ROLE, "content": st.one_of(TEXT, VALUE)}),
                    st.fixed_dictionaries({"from": ROLE, "value": TEXT}), VALUE)
MESSAGES = st.one_of(st.lists(MESSAGE, max_size=5), VALUE)
HISTORY = st.one_of(st.lists(st.lists(TEXT, max_size=3), max_size=3),
                    st.lists(TEXT, max_size=5), VALUE)
LABEL = st.one_of(st.booleans(), st.sampled_from(["true", "No", "good", "maybe", ""]),
                  st.integers(-1, 2), SCALAR)

FIELDS = {
    "alpaca": {"instruction": TEXT, "input": TEXT, "output": TEXT, "system": TEXT,
               "history": HISTORY},
    "prompt_response": {"prompt": TEXT, "response": TEXT, "system": TEXT, "history": HISTORY},
    "messages": {"messages": MESSAGES, "conversations": MESSAGES, "system": TEXT},
    "text": {"text": TEXT},
    "preference": {"prompt": TEXT, "messages": MESSAGES, "instruction": TEXT,
                   "chosen": st.one_of(TEXT, MESSAGE, MESSAGES),
                   "rejected": st.one_of(TEXT, MESSAGE, MESSAGES),
                   "output": st.lists(TEXT, max_size=3), "margin": SCALAR},
    "kto": {"prompt": TEXT, "messages": MESSAGES, "completion": st.one_of(TEXT, MESSAGE),
            "label": LABEL, "kto_tag": LABEL},
    "prompt": {"prompt": TEXT, "messages": MESSAGES, "instruction": TEXT, "input": TEXT,
               "history": HISTORY, "answer": VALUE},
}


@st.composite
def rows(draw, fmt):
    out = {}
    for name, good in FIELDS[fmt].items():
        kind = draw(st.sampled_from(["absent", "good", "good", "wrong"]))
        if kind != "absent":
            out[name] = draw(good if kind == "good" else VALUE)
    out.update(draw(st.dictionaries(st.text(min_size=1, max_size=6), SCALAR, max_size=2)))
    return out


@st.composite
def jsonl_lines(draw, fmt):
    """(bytes of one line, is_blank) -- most lines are rows, some are broken on purpose."""
    row = draw(rows(fmt))
    text = json.dumps(row)
    kind = draw(st.sampled_from(["row"] * 6 + ["truncated", "bad_utf8", "not_object", "blank",
                                              "nan"]))
    if kind == "truncated":
        cut = text[:draw(st.integers(0, max(0, len(text) - 1)))]
        return cut.encode(), not cut.strip()
    if kind == "bad_utf8":
        raw = text.encode()
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + b"\xff\xfe" + raw[at:], False
    if kind == "not_object":
        return json.dumps(draw(st.one_of(st.lists(SCALAR, max_size=2), SCALAR))).encode(), False
    if kind == "blank":
        return draw(st.sampled_from([b"", b"   ", b"\t"])), True
    if kind == "nan":
        return json.dumps(dict(row, margin=float("nan"), text=row.get("text"))).encode(), False
    return text.encode(), False


def _cell(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _csv_bytes(data: list[dict]) -> bytes:
    keys = sorted({k for r in data for k in r})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(keys or ["x"])
    for r in data:
        w.writerow([_cell(r[k]) if k in r else "" for k in keys] or [""])
    return buf.getvalue().encode("utf-8", "surrogatepass")


def _write(folder: Path, kind: str, lines: list[tuple[bytes, bool]], data: list[dict],
           cut: int) -> Path:
    """One example's file in ``folder`` (the test's tmp_path; each example overwrites it)."""
    path = folder / f"data.{kind}"
    if kind == "jsonl":
        path.write_bytes(b"\n".join(line for line, _ in lines) + b"\n")
    elif kind == "json":
        raw = json.dumps(data).encode("utf-8", "surrogatepass")
        path.write_bytes(raw[:cut] if cut else raw)
    else:
        raw = _csv_bytes(data)
        path.write_bytes(raw[:cut] if cut else raw)
    return path


def _encodable(value) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _check_example(ex, fmt: str) -> None:
    """A converted example is something the later stages can use."""
    from lmforge.data.types import Conversation, Text

    assert _encodable(ex.to_dict()), f"unencodable text survived: {ex}"
    if isinstance(ex, Text):
        assert isinstance(ex.text, str) and ex.text.strip()
        return
    msgs = list(getattr(ex, "messages", None) or getattr(ex, "prompt", ()))
    body = msgs[1:] if msgs and msgs[0]["role"] == "system" else msgs
    for i, m in enumerate(body):
        assert m["role"] == ("user" if i % 2 == 0 else "assistant"), msgs
        assert isinstance(m["content"], str) and m["content"].strip(), msgs
    if isinstance(ex, Conversation):
        assert body and body[-1]["role"] == "assistant"
    else:
        assert body and body[-1]["role"] == "user"
    for name in ("chosen", "rejected", "completion"):
        if hasattr(ex, name):
            assert isinstance(getattr(ex, name), str) and getattr(ex, name).strip()
    if getattr(ex, "margin", None) is not None:
        assert math.isfinite(ex.margin)
    if hasattr(ex, "label"):
        assert isinstance(ex.label, bool)


def _check_error(err, path: Path, row_parsed: bool, n_lines: int) -> None:
    assert err.file == str(path), err
    assert isinstance(err.line, int) and 1 <= err.line <= max(n_lines, 1), err
    if row_parsed:
        assert err.field, f"no field named: {err}"
    assert err.reason and "Traceback" not in str(err)


def read_all(path: Path, fmt: str) -> tuple[int, int]:
    """(examples, errors) of one file, checking each outcome; a whole-file DataError is fine
    when it names the file and line."""
    from lmforge.data import pipeline  # noqa: F401 - registers the preference/kto/prompt formats
    from lmforge.data.formats import converter
    from lmforge.data.sources import iter_rows
    from lmforge.errors import DataError

    convert = converter(fmt, {})
    n_lines = len(re.split(rb"\r\n|\r|\n", path.read_bytes()))  # universal newlines, as csv
    ok = bad = 0
    try:
        for where, row in iter_rows(path):
            if isinstance(row, DataError):
                _check_error(row, path, False, n_lines)
                bad += 1
                continue
            try:
                ex = convert(row, {}, where, None)
            except DataError as err:
                _check_error(err, path, True, n_lines)
                bad += 1
                continue
            _check_example(ex, fmt)
            ok += 1
    except DataError as err:
        _check_error(err, path, False, n_lines)
        return -1, -1
    return ok, bad


def _property(fmt: str, data, folder: Path) -> None:
    kind = data.draw(st.sampled_from(["jsonl", "jsonl", "json", "csv"]), label="kind")
    lines = data.draw(st.lists(jsonl_lines(fmt), min_size=1, max_size=6), label="lines")
    rows_ = data.draw(st.lists(rows(fmt), max_size=5), label="rows")
    cut = data.draw(st.one_of(st.just(0), st.integers(1, 200)), label="cut")
    path = _write(folder, kind, lines, rows_, cut)
    ok, bad = read_all(path, fmt)
    if kind == "jsonl":  # no silent drops: every non-blank line is an example or an error
        assert ok + bad == sum(not blank for _, blank in lines)


@pytest.mark.parametrize("fmt", FORMATS)
@FAST
@given(data=st.data())
def test_fuzz_every_format_reads_or_names_the_bad_row(fmt, data, tmp_path):
    _property(fmt, data, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@SLOW
@given(data=st.data())
def test_fuzz_every_format_many_examples(fmt, data, tmp_path):
    _property(fmt, data, tmp_path)


CONTENT = st.one_of(st.text(min_size=1, max_size=30), st.sampled_from(HOSTILE))


@st.composite
def chats(draw):
    n = draw(st.integers(0, 3))
    roles = draw(st.lists(st.sampled_from(["user", "assistant", "system", "gpt"]),
                          min_size=n, max_size=n))
    return {"messages": [{"role": r, "content": draw(CONTENT)} for r in roles] +
            [{"role": "user", "content": draw(CONTENT)},
             {"role": "assistant", "content": draw(CONTENT)}]}


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.lists(chats(), min_size=1, max_size=4))
def test_fuzz_pipeline_build_with_the_tokenizer(tiny_tokenizer, data, tmp_path):
    """Rows that parse must also render and encode (special-token text, template syntax, huge
    fields inside messages): the built dataset, or a DataError/ConfigError."""
    from lmforge.config import validate
    from lmforge.data import pipeline
    from lmforge.data.templates import resolve_template
    from lmforge.errors import ConfigError, DataError

    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    cfg = validate({"stage": "sft", "model": {"path": "builtin:tiny-llama"},
                    "data": {"train": str(path), "format": "messages", "max_length": 64,
                             "cache": False}})
    tok = tiny_tokenizer
    try:
        built = pipeline.build(cfg, tok, resolve_template(cfg.model.template, tok))
    except (DataError, ConfigError) as err:
        assert str(path) in str(err) or isinstance(err, ConfigError), err
        return
    assert len(built.train) >= 1
    for ids, labels in zip(built.train["input_ids"], built.train["labels"]):
        assert len(ids) == len(labels) <= 64 and any(t != -100 for t in labels)
