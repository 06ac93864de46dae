"""The ``alpaca_stanford`` built-in template renders Stanford Alpaca's training prompt exactly:
the "paired with an input" preamble and an ``### Input:`` block when the row has an input, the
no-input variant otherwise, the response right after ``### Response:`` and ending with EOS."""

from __future__ import annotations

from lmforge.data.encode import IGNORE, encode_conversation
from lmforge.data.formats import from_alpaca
from lmforge.data.templates import builtin_template, render_prompt

# github.com/tatsu-lab/stanford_alpaca train.py, PROMPT_DICT (verbatim)
PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:")
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:")
TEMPLATE = builtin_template("alpaca_stanford")


def _encode(row, tokenizer):
    conv = from_alpaca(row, {}, "a.json:1")
    return conv, encode_conversation(conv, tokenizer, TEMPLATE)


def test_with_input_is_stanfords_prompt_input(tiny_tokenizer):
    row = {"instruction": "Classify the sentiment.", "input": "I love it.", "output": "positive"}
    conv, enc = _encode(row, tiny_tokenizer)
    source = PROMPT_INPUT.format_map(row)
    assert tiny_tokenizer.decode(enc.input_ids) == source + "positive" + tiny_tokenizer.eos_token
    assert render_prompt(conv.prompt_messages(), TEMPLATE, tiny_tokenizer) == source
    assert tiny_tokenizer.decode([t for t in enc.labels if t != IGNORE]) == \
        "positive" + tiny_tokenizer.eos_token


def test_without_input_is_stanfords_prompt_no_input(tiny_tokenizer):
    for row in ({"instruction": "Name a colour.", "input": "", "output": "red"},
                {"instruction": "Name a colour.", "output": "red"}):
        conv, enc = _encode(row, tiny_tokenizer)
        source = PROMPT_NO_INPUT.format_map(row)
        assert tiny_tokenizer.decode(enc.input_ids) == source + "red" + tiny_tokenizer.eos_token
        assert render_prompt(conv.prompt_messages(), TEMPLATE, tiny_tokenizer) == source


def test_other_templates_still_join_the_input(tiny_tokenizer):
    conv = from_alpaca({"instruction": "Translate.", "input": "Hallo", "output": "Hello"}, {},
                       "a.json:1")
    text = tiny_tokenizer.apply_chat_template(conv.as_list(), tokenize=False,
                                              chat_template=builtin_template("alpaca"))
    assert "### Instruction:\nTranslate.\nHallo\n\n### Response:\nHello" in text
