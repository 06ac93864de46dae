"""Tool calling: rows in OpenAI, LLaMA-Factory and ShareGPT spellings become one canonical
conversation, and its label mask equals the template's own assistant mask
(``apply_chat_template(..., tools=..., return_assistant_tokens_mask=True)``): tool-call turns
trained, tool results not (unless ``data.train_on_tool_results``), derived spans equal marked."""

from __future__ import annotations

import json
import re

import pytest

from lmforge.data.encode import IGNORE, Settings, encode_conversation
from lmforge.data.formats import from_messages
from lmforge.data.read import train_tool_results
from lmforge.data.templates import builtin_template, check_template, render_prompt
from lmforge.errors import DataError

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
CALC = {"name": "calculate", "description": "Arithmetic",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}


def _call(name, args):
    return {"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


OPENAI = {  # two calls in one turn, two results, a final answer, then a second exchange
    "messages": [
        {"role": "system", "content": "You help."},
        {"role": "user", "content": "Weather in Paris and 2+3?"},
        {"role": "assistant", "content": None, "tool_calls": [
            _call("get_weather", {"city": "Paris"}), _call("calculate", {"expression": "2+3"})]},
        {"role": "tool", "tool_call_id": "a", "content": "{\"temp\": 21}"},
        {"role": "tool", "tool_call_id": "b", "content": "5"},
        {"role": "assistant", "content": "21 degrees; 5."},
        {"role": "user", "content": "And Rome?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            _call("get_weather", {"city": "Rome"})]},
    ],
    "tools": [WEATHER, {"type": "function", "function": CALC}],
}
LLAMA_FACTORY = {  # glaive_toolcall_en_demo's shape: tools as JSON text, bare schemas
    "conversations": [
        {"from": "human", "value": "What is 2+3?"},
        {"from": "function_call", "value": json.dumps({"name": "calculate",
                                                       "arguments": {"expression": "2+3"}})},
        {"from": "observation", "value": "{\"result\": 5}"},
        {"from": "gpt", "value": "It is 5."},
    ],
    "tools": json.dumps([CALC]),
}
SHAREGPT_TOOL = {  # ShareGPT with a 'tool' result turn and a list of calls
    "conversations": [
        {"from": "human", "value": "Weather in Oslo?"},
        {"from": "function_call", "value": json.dumps([{"name": "get_weather",
                                                        "arguments": {"city": "Oslo"}}])},
        {"from": "tool", "value": "cold"},
        {"from": "gpt", "value": "Cold."},
    ],
    "tools": [WEATHER],
}
ROWS = {"openai": OPENAI, "llamafactory": LLAMA_FACTORY, "sharegpt": SHAREGPT_TOOL}
TEMPLATE = builtin_template("chatml_tools")
BARE = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", TEMPLATE)


def _reference(tokenizer, conv, template):
    ref = tokenizer.apply_chat_template(conv.as_list(), tools=list(conv.tools or []) or None,
                                        chat_template=template, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    return list(ref["input_ids"]), list(ref["assistant_masks"])


@pytest.mark.parametrize("case", sorted(ROWS))
def test_tool_mask_equals_the_templates_own(tiny_tokenizer, case):
    conv = from_messages(ROWS[case], {}, "t.jsonl:1")
    check_template(TEMPLATE, tiny_tokenizer)
    enc = encode_conversation(conv, tiny_tokenizer, TEMPLATE, Settings())
    ids, mask = _reference(tiny_tokenizer, conv, TEMPLATE)
    assert enc.input_ids == ids
    assert [int(x != IGNORE) for x in enc.labels] == mask
    trained = tiny_tokenizer.decode([x for x in enc.labels if x != IGNORE])
    assert "<tool_call>" in trained and "</tool_call><|im_end|>" in trained
    assert "tool_response" not in trained  # the results are context
    text = tiny_tokenizer.decode(ids)
    assert "<tools>" in text and "<tool_response>" in text


@pytest.mark.parametrize("case", sorted(ROWS))
def test_derived_tool_spans_equal_marked(tiny_tokenizer, case):
    conv = from_messages(ROWS[case], {}, "t.jsonl:1")
    marked = encode_conversation(conv, tiny_tokenizer, TEMPLATE)
    derived = encode_conversation(conv, tiny_tokenizer, BARE)
    assert marked.input_ids == derived.input_ids
    assert marked.labels == derived.labels


def test_spellings_give_one_canonical_form():
    lf = from_messages(LLAMA_FACTORY, {}, "t:1")
    call = lf.messages[1]
    assert call == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "calculate",
                                          "arguments": {"expression": "2+3"}}}]}
    assert lf.messages[2] == {"role": "tool", "content": "{\"result\": 5}"}
    assert lf.tools == ({"type": "function", "function": CALC},)
    oa = from_messages(OPENAI, {}, "t:1")
    assert oa.messages[2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert oa.messages[3] == {"role": "tool", "content": "{\"temp\": 21}", "tool_call_id": "a"}
    legacy = {"messages": [{"role": "user", "content": "2+3?"},
                           {"role": "assistant", "content": None,
                            "function_call": {"name": "calculate", "arguments": "{}"}},
                           {"role": "function", "name": "calculate", "content": "5"},
                           {"role": "assistant", "content": "5"}]}
    conv = from_messages(legacy, {}, "t:1")
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "tool", "assistant"]
    assert conv.tools is None


def test_train_on_tool_results_trains_their_content(tiny_tokenizer):
    conv = train_tool_results(from_messages(LLAMA_FACTORY, {}, "t:1"))
    enc = encode_conversation(conv, tiny_tokenizer, TEMPLATE)
    trained = tiny_tokenizer.decode([x for x in enc.labels if x != IGNORE])
    assert trained == ('<tool_call>\n{"name": "calculate", "arguments": {"expression": "2+3"}}'
                       '\n</tool_call><|im_end|>{"result": 5}It is 5.<|im_end|>')
    last = encode_conversation(conv, tiny_tokenizer, TEMPLATE, Settings(train_on="last_assistant"))
    assert tiny_tokenizer.decode([x for x in last.labels if x != IGNORE]) == "It is 5.<|im_end|>"


def test_prompt_renders_tools_and_ends_where_the_call_starts(tiny_tokenizer):
    conv = from_messages(SHAREGPT_TOOL, {}, "t:1")
    msgs = conv.as_list()
    prompt = render_prompt(msgs[:1], TEMPLATE, tiny_tokenizer, conv.tools)
    full = tiny_tokenizer.apply_chat_template(msgs[:2], tools=list(conv.tools),
                                              chat_template=TEMPLATE, tokenize=False)
    assert full.startswith(prompt) and full[len(prompt):].startswith("<tool_call>\n{")


def test_without_tools_it_renders_as_chatml(tiny_tokenizer):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}]
    render = tiny_tokenizer.apply_chat_template
    assert render(msgs, chat_template=TEMPLATE, tokenize=False) == \
        render(msgs, chat_template=builtin_template("chatml"), tokenize=False)


BAD = [
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "5"},
                   {"role": "assistant", "content": "y"}]}, "turn 1 is 'tool'"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"type": "function", "function": {"name": "f", "arguments": "{bad"}}]}]},
     "arguments is not valid JSON"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"type": "function", "function": {"arguments": "{}"}}]}]},
     "has no function name"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
      "tools": "[{\"description\": \"no name\"}]"}, "item 0 has no function name"),
    ({"conversations": [{"from": "human", "value": "x"},
                        {"from": "function_call", "value": "not json"}]},
     "the function call is not valid JSON"),
    ({"messages": [{"role": "user", "content": "x"},
                   {"role": "assistant", "content": None, "tool_calls": [
                       _call("f", {})]},
                   {"role": "user", "content": "y"}, {"role": "assistant", "content": "z"}]},
     "turn 2 is 'user' but tool was expected after a tool call"),
]


@pytest.mark.parametrize("row,message", BAD, ids=[m for _, m in BAD])
def test_bad_tool_rows_name_line_and_reason(row, message):
    with pytest.raises(DataError, match=re.escape(message)) as err:
        from_messages(row, {}, "data/t.jsonl:7")
    assert "data/t.jsonl:7" in str(err.value)


def test_llamafactory_registry_entry_with_tools(tmp_path):
    from lmforge.config import validate
    from lmforge.data.pipeline import load_examples

    (tmp_path / "glaive.json").write_text(json.dumps([LLAMA_FACTORY]))
    (tmp_path / "dataset_info.json").write_text(json.dumps({"glaive_toolcall_en_demo": {
        "file_name": "glaive.json", "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools"}}}))
    cfg = validate({"model": {"path": "builtin:tiny-llama"}, "train": {"output_dir": "o"},
                    "data": {"registry": str(tmp_path / "dataset_info.json"),
                             "train": "glaive_toolcall_en_demo", "train_on_tool_results": True}})
    [conv] = load_examples(cfg).train
    assert conv.tools == ({"type": "function", "function": CALC},)
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "tool", "assistant"]
    assert conv.messages[2]["train"] is True  # data.train_on_tool_results flags the results
