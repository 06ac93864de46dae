"""Preference, KTO and prompt-only rows -> canonical examples, and the errors bad rows give."""

from __future__ import annotations

import pytest

from lmforge.data.formats import CONVERTERS, converter
from lmforge.data.preference import KTOExample, PreferenceExample, from_kto, from_preference
from lmforge.data.prompts import PromptExample, from_prompt
from lmforge.errors import ConfigError, DataError

USER = {"role": "user", "content": "q"}


def test_formats_are_registered_with_the_pipeline():
    import lmforge.data.pipeline  # noqa: F401 - the pipeline imports the registrations

    for name in ("preference", "kto", "prompt"):
        assert name in CONVERTERS
    with pytest.raises(ConfigError, match="data.columns.chosn: not a field.*did you mean"):
        converter("preference", {"chosn": "good"})


def test_preference_prompt_chosen_rejected_with_system_and_history():
    ex = from_preference({"prompt": "q2", "chosen": "yes", "rejected": "no", "system": "S",
                          "history": [["q1", "a1"]], "margin": "0.5"}, {}, "f.jsonl:3")
    assert isinstance(ex, PreferenceExample)
    assert [m["role"] for m in ex.prompt] == ["system", "user", "assistant", "user"]
    assert ex.prompt[-1]["content"] == "q2"
    assert (ex.chosen, ex.rejected, ex.margin, ex.where) == ("yes", "no", 0.5, "f.jsonl:3")


def test_preference_seed_form_instruction_input_output_pair():
    ex = from_preference({"instruction": "Rate it", "input": "a film",
                          "output": ["great film", "bad film"]}, {}, "f:1")
    # the parts stay on the message for templates that lay them out (alpaca_stanford)
    assert ex.prompt == ({"role": "user", "content": "Rate it\na film", "instruction": "Rate it",
                          "input": "a film"},)
    assert (ex.chosen, ex.rejected) == ("great film", "bad film")


def test_preference_messages_history_and_message_answers_and_column_mapping():
    row = {"conversations": [{"from": "human", "value": "q"}],
           "good": {"from": "gpt", "value": "A"}, "bad": [{"role": "assistant", "content": "B"}]}
    ex = from_preference(row, {"chosen": "good", "rejected": "bad"}, "f:2", "SYS")
    assert ex.prompt == ({"role": "system", "content": "SYS"}, USER)
    assert (ex.chosen, ex.rejected) == ("A", "B")


@pytest.mark.parametrize("row, field, reason", [
    ({"prompt": "q", "chosen": "a"}, "rejected", "missing"),
    ({"prompt": "q", "chosen": "a", "rejected": "  "}, "rejected", "is empty"),
    ({"prompt": "q", "chosen": 3, "rejected": "b"}, "chosen", "must be a string"),
    ({"instruction": "q", "output": "only one"}, "output", "list [chosen, rejected]"),
    ({"question": "q", "chosen": "a", "rejected": "b"}, "prompt", "has no prompt"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}, "margin", "number"),
    ({"messages": [USER, {"role": "assistant", "content": "a"}], "chosen": "a",
      "rejected": "b"}, "messages", "last turn must be the user's"),
    ({"prompt": "q", "chosen": {"role": "user", "content": "a"}, "rejected": "b"}, "chosen",
     "role assistant"),
])
def test_bad_preference_rows_name_file_line_and_field(row, field, reason):
    with pytest.raises(DataError) as exc:
        from_preference(row, {}, "data/pairs.jsonl:17")
    err = exc.value
    assert (err.file, err.line, err.field) == ("data/pairs.jsonl", 17, field)
    assert reason in err.reason


def test_kto_rows_completion_label_and_sharegpt_kto_tag():
    ex = from_kto({"prompt": "q", "completion": "a", "label": "false"}, {}, "f:1")
    assert isinstance(ex, KTOExample) and ex.label is False and ex.completion == "a"
    ex = from_kto({"messages": [USER, {"role": "assistant", "content": "ans"}], "tag": True},
                  {"kto_tag": "tag"}, "f:2")
    assert ex.prompt == (USER,) and ex.completion == "ans" and ex.label is True
    with pytest.raises(DataError, match="true/false"):
        from_kto({"prompt": "q", "completion": "a", "label": "maybe"}, {}, "f:3")
    with pytest.raises(DataError, match="missing"):
        from_kto({"prompt": "q", "completion": "a"}, {}, "f:4")


def test_prompt_rows_keep_other_columns_for_reward_functions():
    ex = from_prompt({"prompt": "2+2?", "answer": "4", "meta": {"k": 1}}, {}, "f:1")
    assert isinstance(ex, PromptExample)
    assert ex.messages == ({"role": "user", "content": "2+2?"},)
    assert ex.extras == {"answer": "4", "meta": {"k": 1}}
    # an SFT row works too: its answer becomes a column (a gold answer)
    ex = from_prompt({"instruction": "Spell 4", "input": "", "output": "four"}, {}, "f:2")
    assert ex.messages == ({"role": "user", "content": "Spell 4"},) and ex.extras == {
        "output": "four"}
    ex = from_prompt({"q": "hi", "gold": "x"}, {"prompt": "q"}, "f:3")
    assert ex.messages[-1]["content"] == "hi" and ex.extras == {"gold": "x"}


def test_examples_round_trip_through_the_cache_form():
    from lmforge.data.types import from_dict

    for ex in (PreferenceExample((USER,), "a", "b", 1.0, "f:1"), KTOExample((USER,), "a", True),
               PromptExample((USER,), {"gold": "x"}, "f:2")):
        assert from_dict(ex.to_dict()) == ex
