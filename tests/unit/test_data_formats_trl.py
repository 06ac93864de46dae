"""Every row format of TRL's dataset-format table (and LLaMA-Factory's) is read by the stages it
makes sense for, with data.format: auto (the default) and explicitly; what auto picks, and what it
refuses."""

from __future__ import annotations

import logging

import pytest

from lmforge.config import validate
from lmforge.data.pipeline import load_examples
from lmforge.data.preference import KTOExample, PreferenceExample
from lmforge.data.prompts import PromptExample
from lmforge.data.types import Conversation, Text
from lmforge.errors import DataError
from tests.conftest import write_jsonl


def U(c):
    return {"role": "user", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


S = {"role": "system", "content": "Be brief."}


def cfg_for(tmp_path, stage="sft", **data):
    raw = {"stage": stage, "model": {"path": "builtin:tiny-llama"}, "data": data,
           "train": {"output_dir": str(tmp_path / "out")}}
    if stage in ("ppo", "grpo"):
        raw[stage] = {"reward_functions": [{"function": "exact_match",
                                            "kwargs": {"column": "answer"}}]}
    return validate(raw)


def load(tmp_path, rows, stage="sft", **data):
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    return load_examples(cfg_for(tmp_path, stage, train=str(path), **data)).train


def roles(ex):
    return [(m["role"], m["content"]) for m in ex.messages]


# (rows, stage, canonical type, what the first example holds)
CASES = {
    "trl prompt-completion strings": (
        [{"prompt": "The sky is", "completion": "blue."}], "sft", Conversation,
        lambda e: roles(e) == [("user", "The sky is"), ("assistant", "blue.")]),
    "trl conversational prompt-completion": (
        [{"prompt": [S, U("Sky?")], "completion": [A("Blue.")]}], "sft", Conversation,
        lambda e: roles(e) == [("system", "Be brief."), ("user", "Sky?"), ("assistant", "Blue.")]),
    "trl conversational preference": (
        [{"prompt": [U("Sky?")], "chosen": [A("Blue.")], "rejected": [A("Green.")]}], "dpo",
        PreferenceExample, lambda e: (e.prompt, e.chosen, e.rejected) == ((U("Sky?"),), "Blue.",
                                                                          "Green.")),
    "implicit prompt preference": (
        [{"chosen": [U("Hi"), A("Hello"), U("Sky?"), A("Blue.")],
          "rejected": [U("Hi"), A("Hello"), U("Sky?"), A("Green.")]}], "rm", PreferenceExample,
        lambda e: (e.prompt, e.chosen, e.rejected) == ((U("Hi"), A("Hello"), U("Sky?")), "Blue.",
                                                       "Green.")),
    "implicit prompt with a system message": (
        [{"chosen": [S, U("Sky?"), A("Blue.")], "rejected": [S, U("Sky?"), A("Green.")]}],
        "orpo", PreferenceExample, lambda e: e.prompt == (S, U("Sky?")) and e.chosen == "Blue."),
    "trl unpaired conversational": (
        [{"prompt": [U("Sky?")], "completion": [A("Green.")], "label": False}], "kto", KTOExample,
        lambda e: (e.prompt, e.completion, e.label) == ((U("Sky?"),), "Green.", False)),
    "standard preference under kto": (
        [{"prompt": "Sky?", "chosen": "Blue.", "rejected": "Green."}], "kto", PreferenceExample,
        lambda e: e.chosen == "Blue."),
    "grpo prompts as message lists": (
        [{"prompt": [S, U("Sky?")], "answer": "blue"}], "grpo", PromptExample,
        lambda e: e.messages == (S, U("Sky?")) and e.extras == {"answer": "blue"}),
    "ppo prompts from sft rows": (
        [{"instruction": "Sky?", "input": "", "output": "Blue."}], "ppo", PromptExample,
        lambda e: e.messages == (U("Sky?"),) and e.extras == {"output": "Blue."}),
    "messages": (
        [{"messages": [U("Sky?"), A("Blue.")]}], "sft", Conversation,
        lambda e: roles(e) == [("user", "Sky?"), ("assistant", "Blue.")]),
    "sharegpt conversations": (
        [{"conversations": [{"from": "human", "value": "Sky?"}, {"from": "gpt", "value": "B"}]}],
        "sft", Conversation, lambda e: roles(e)[-1] == ("assistant", "B")),
    "alpaca": ([{"instruction": "Sky?", "input": "", "output": "Blue."}], "sft", Conversation,
               lambda e: roles(e) == [("user", "Sky?"), ("assistant", "Blue.")]),
    "prompt_response": ([{"prompt": "Sky?", "response": "Blue."}], "sft", Conversation,
                        lambda e: roles(e)[-1] == ("assistant", "Blue.")),
    "text for pt": ([{"text": "The sky is blue."}], "pt", Text,
                    lambda e: e.text == "The sky is blue."),
    "preference pairs under sft train the chosen": (
        [{"prompt": [U("Sky?")], "chosen": [A("Blue.")], "rejected": [A("Green.")]}], "sft",
        PreferenceExample, lambda e: e.chosen == "Blue."),
}
FORMAT_OF = {"trl prompt-completion strings": "prompt_completion",
             "trl conversational prompt-completion": "prompt_completion",
             "trl conversational preference": "preference",
             "implicit prompt preference": "preference",
             "implicit prompt with a system message": "preference",
             "trl unpaired conversational": "kto", "standard preference under kto": "preference",
             "grpo prompts as message lists": "prompt", "ppo prompts from sft rows": "prompt",
             "messages": "messages", "sharegpt conversations": "messages", "alpaca": "alpaca",
             "prompt_response": "prompt_response", "text for pt": "text",
             "preference pairs under sft train the chosen": "preference"}


@pytest.mark.parametrize("name", list(CASES))
def test_auto_reads_every_format_and_says_which(name, tmp_path, caplog):
    rows, stage, kind, check = CASES[name]
    with caplog.at_level(logging.INFO, logger="lmforge.data.read"):
        got = load(tmp_path, rows, stage)
    assert type(got[0]) is kind and check(got[0])
    assert f"data.format auto: read as '{FORMAT_OF[name]}'" in caplog.text
    explicit = load(tmp_path, rows, stage, format=FORMAT_OF[name])  # explicit formats still work
    assert explicit == got


def test_auto_refuses_ambiguous_columns_listing_the_candidates(tmp_path):
    with pytest.raises(DataError, match="fit several formats") as exc:
        load(tmp_path, [{"prompt": "p", "response": "r", "completion": "c"}])
    assert "prompt_completion (prompt + completion)" in exc.value.message
    assert "prompt_response (prompt + response)" in exc.value.message
    assert "data.format" in exc.value.hint


def test_auto_refuses_rows_the_stage_cannot_read(tmp_path):
    with pytest.raises(DataError) as exc:
        load(tmp_path, [{"prompt": "p", "completion": "c"}], "dpo")
    assert "stage dpo reads chosen + rejected" in exc.value.message
    assert "data.format" in exc.value.hint and "data.columns" in exc.value.hint
    with pytest.raises(DataError, match="stage pt reads text"):
        load(tmp_path, [{"messages": [U("a"), A("b")]}], "pt")


def test_auto_refuses_sources_whose_first_rows_disagree(tmp_path):
    rows = [{"instruction": "a", "output": "b"}, {"messages": [U("a"), A("b")]}]
    with pytest.raises(DataError, match="different formats") as exc:
        load(tmp_path, rows)
    assert "alpaca" in exc.value.message and "messages" in exc.value.message


def test_auto_follows_data_columns(tmp_path):
    got = load(tmp_path, [{"question": "Sky?", "answer": "Blue."}],
               columns={"prompt": "question", "completion": "answer"})
    assert roles(got[0]) == [("user", "Sky?"), ("assistant", "Blue.")]


def test_messages_file_with_alpaca_format_hint_names_format_and_columns(tmp_path):
    with pytest.raises(DataError, match="field 'instruction' missing") as exc:
        load(tmp_path, [{"messages": [U("a"), A("b")]}], format="alpaca")
    assert "data.format (this source is read as 'alpaca')" in exc.value.hint
    assert "data.columns" in exc.value.hint
    # the same file with the default (auto) is simply read
    assert roles(load(tmp_path, [{"messages": [U("a"), A("b")]}])[0])[-1] == ("assistant", "b")


@pytest.mark.parametrize("rows, field, reason", [
    ([{"chosen": [U("a"), A("b")], "rejected": [U("x"), A("c")]}], "chosen", "2 messages follow"),
    ([{"chosen": [U("a"), A("b")], "rejected": [U("a"), A("b"), U("c"), A("d")]}], "rejected",
     "3 messages follow it"),
    ([{"prompt": [U("a")], "chosen": [A("b"), A("c")], "rejected": [A("d")]}], "chosen",
     "one assistant message"),
    ([{"prompt": [U("a")], "completion": "b"}], "prompt", "both be lists"),
    ([{"prompt": [U("a"), A("b")], "completion": [A("c")]}], "prompt", "last turn must be the user"),
    ([{"prompt": [U("a")], "completion": [S, A("c")]}], "completion", "belongs in the prompt"),
])
def test_conversational_rows_name_line_and_field(rows, field, reason, tmp_path):
    stage = "dpo" if "chosen" in rows[0] else "sft"
    with pytest.raises(DataError, match=reason) as exc:
        load(tmp_path, rows, stage)
    assert (exc.value.line, exc.value.field) == (1, field)


def test_auto_picks_the_format_of_every_documented_row():
    """docs/data.md's example rows: data.format auto reads each as its section's format."""
    import json
    import re

    from lmforge.data.detect import choose
    from tests.conftest import REPO

    text = (REPO / "docs" / "data.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- format: (\w+) -->\s*```jsonl\n(.*?)```", text, re.S)
    stage_of = {"text": "pt", "preference": "dpo", "kto": "kto", "prompt": "grpo"}
    assert len(blocks) == 9  # messages twice: chats, and tool calls
    for fmt, body in blocks:
        for i, line in enumerate(x for x in body.splitlines() if x.strip()):
            row = json.loads(line)
            assert choose([(f"docs:{i}", row)], stage_of.get(fmt, "sft"), {}, "docs") == fmt
