"""The tool-calling example: `lmforge tiny --tools` gives a tokenizer with the chatml_tools
template (the default tiny model keeps plain ChatML), the committed data is its generator's
output with held-out requests phrased differently, the call parser is strict, and (slow) the
example's tuned model answers held-out requests with well-formed tool calls."""

from __future__ import annotations

import importlib.util
import json

import pytest

from lmforge.data.templates import builtin_template
from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def _module(path):
    spec = importlib.util.spec_from_file_location(f"example_tools_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_tools_flag(cli, tmp_path, tiny_tokenizer):
    from transformers import AutoTokenizer

    result = cli("tiny", str(tmp_path / "m"), "--tools", "--hidden", "32", "--layers", "1")
    assert result.returncode == 0, result.stderr
    assert "tool-calling template" in result.stdout
    tok = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert tok.chat_template == builtin_template("chatml_tools")
    assert len(tok("<tool_call>", add_special_tokens=False)["input_ids"]) == 1
    assert tok.decode(tok("<tool_call>x</tool_call>", add_special_tokens=False)["input_ids"],
                      skip_special_tokens=True) == "<tool_call>x</tool_call>"
    assert "tools" not in tiny_tokenizer.chat_template  # the default tiny model is unchanged
    assert json.loads((tmp_path / "m" / "lmforge_tiny.json").read_text())["tools"] is True


def test_committed_tools_data_is_the_generators_output(tmp_path):
    _module(EXAMPLES / "data" / "make_tools.py").main(["--out", str(tmp_path)])
    for name in ("tools_train.jsonl", "tools_eval.jsonl"):
        assert (tmp_path / name).read_text() == (EXAMPLES / "data" / name).read_text(), name
    gen = _module(EXAMPLES / "data" / "make_tools.py")
    train = {p for ps in gen.TRAIN.values() for p in ps}
    assert not train & {p for ps in gen.HELD_OUT.values() for p in ps}


def test_call_parser_is_strict():
    tc = _module(EXAMPLES / "tiny" / "tool_calls.py")
    good = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "2 + 3"}}\n</tool_call>'
    assert tc.parse_call(good) == {"name": "calculate", "arguments": {"expression": "2 + 3"}}
    for bad in ("<tool_call>\n</tool_call>", '<tool_call>{"name": "f"}</tool_call>',
                '<tool_call>{"name": "f", "arguments": "x"}</tool_call>',
                '{"name": "f", "arguments": {}}', '<tool_call>{"name": "f", </tool_call>'):
        assert tc.parse_call(bad) is None, bad


@pytest.mark.slow
def test_tools_example_learns_to_call_tools(cli, tmp_path):
    run = tmp_path / "run"
    result = cli("train", "examples/tiny/tools.yaml", f"train.output_dir={run}",
                 env={"OMP_NUM_THREADS": "2"}, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    tc = _module(EXAMPLES / "tiny" / "tool_calls.py")
    rows = [json.loads(line) for line in (EXAMPLES / "data" / "tools_eval.jsonl").open()]
    before = tc.score("builtin:tiny-llama-tools", rows)
    after = tc.score(str(run), rows)
    # measured (examples/README.md): well-formed 0.000 -> 0.417, right function 0.000 -> 0.050
    assert before["well_formed"] <= 0.05
    assert after["well_formed"] >= 0.25 and after["well_formed"] > before["well_formed"], after
