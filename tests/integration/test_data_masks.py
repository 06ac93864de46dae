"""Golden label masks: for every built-in template and for ``auto`` on the tiny tokenizer, the
trained tokens are exactly ``apply_chat_template(..., return_assistant_tokens_mask=True)``'s,
respecting ``data.train_on``; BPE seams (no space, CJK, emoji) included. Templates without
generation markers get derived spans that must equal the marked ones."""

from __future__ import annotations

import re

import pytest

from lmforge.data.encode import IGNORE, Settings, encode_conversation
from lmforge.data.templates import (builtin_names, builtin_template, check_template,
                                    end_of_turn_id, end_of_turn_text, render_prompt,
                                    resolve_template)
from lmforge.data.types import Conversation
from lmforge.errors import ConfigError

U, A, S = "user", "assistant", "system"
CONVERSATIONS = {
    "single": [(U, "Hello there"), (A, "Hi! How can I help?")],
    "system": [(S, "You are terse."), (U, "Name a color."), (A, "Red.")],
    "multi": [(U, "one"), (A, "two"), (U, "three"), (A, "four"), (U, "five"), (A, "six")],
    "multi_system": [(S, "Count."), (U, "1"), (A, "2"), (U, "3"), (A, "4")],
    "no_space_seam": [(U, "Q:"), (A, "A:B"), (U, "x"), (A, "yes")],
    "cjk": [(S, "你好"), (U, "今天天气很好吗？"), (A, "很好，模型训练。")],
    "emoji": [(U, "emoji 😀"), (A, "🚀 café naïve"), (U, "“quotes”"), (A, "✓")],
    "leading_space": [(U, "hi"), (A, "  spaced answer  ")],
}
TEMPLATES = builtin_names() + ["auto"]


def as_messages(turns):
    return [{"role": r, "content": c} for r, c in turns]


def reference_mask(tokenizer, messages, template, train_on):
    ref = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True,
                                        return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = list(ref["input_ids"]), list(ref["assistant_masks"])
    if train_on == "all":
        return ids, [1] * len(ids)
    if train_on == "last_assistant":  # keep only the last contiguous assistant run
        last = max(i for i, m in enumerate(mask) if m)
        first = last
        while first > 0 and mask[first - 1]:
            first -= 1
        mask = [1 if first <= i <= last else 0 for i in range(len(mask))]
    return ids, mask


def test_builtins_are_the_eight_documented():
    assert set(builtin_names()) == {"alpaca", "alpaca_stanford", "chatml", "chatml_tools",
                                    "llama2", "llama3", "qwen", "plain"}


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("train_on", ["all_assistant", "last_assistant", "all"])
def test_mask_equals_apply_chat_template(tiny_tokenizer, name, train_on):
    template = resolve_template(name, tiny_tokenizer)
    check_template(template, tiny_tokenizer)
    for case, turns in CONVERSATIONS.items():
        messages = as_messages(turns)
        enc = encode_conversation(Conversation(tuple(messages)), tiny_tokenizer, template,
                                  Settings(train_on=train_on))
        ids, mask = reference_mask(tiny_tokenizer, messages, template, train_on)
        assert enc.input_ids == ids, case
        assert [int(x != IGNORE) for x in enc.labels] == mask, case
        trained = [t for t, m in zip(ids, mask) if m]
        assert [x for x in enc.labels if x != IGNORE] == trained, case  # labels are the ids


@pytest.mark.parametrize("name", TEMPLATES)
def test_end_of_turn_is_trained_after_every_assistant_turn(tiny_tokenizer, name):
    template = resolve_template(name, tiny_tokenizer)
    eot = end_of_turn_id(template, tiny_tokenizer)
    messages = as_messages(CONVERSATIONS["multi"])
    enc = encode_conversation(Conversation(tuple(messages)), tiny_tokenizer, template)
    runs, current = [], []
    for label in enc.labels + [IGNORE]:
        if label != IGNORE:
            current.append(label)
        elif current:
            runs, current = runs + [current], []
    assert len(runs) == 3
    if end_of_turn_text(template, tiny_tokenizer) == tiny_tokenizer.eos_token or name != "llama3":
        assert all(run[-1] == eot for run in runs)


@pytest.mark.parametrize("name", builtin_names())
def test_derived_spans_equal_marked_spans(tiny_tokenizer, name):
    marked = builtin_template(name)
    bare = re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", marked)
    assert bare != marked
    check_template(bare, tiny_tokenizer)
    for case, turns in CONVERSATIONS.items():
        conv = Conversation(tuple(as_messages(turns)))
        a = encode_conversation(conv, tiny_tokenizer, marked)
        b = encode_conversation(conv, tiny_tokenizer, bare)
        assert a.input_ids == b.input_ids, case
        if name != "llama3":  # '<|eot_id|>' is no special token of the tiny tokenizer
            assert a.labels == b.labels, case


SMOLLM2_TEMPLATE = (  # SmolLM2-Instruct's ChatML template: no generation markers
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_auto_template_without_markers_is_derived(tiny_tokenizer):
    check_template(SMOLLM2_TEMPLATE, tiny_tokenizer)
    conv = Conversation(tuple(as_messages(CONVERSATIONS["multi"])))
    enc = encode_conversation(conv, tiny_tokenizer, SMOLLM2_TEMPLATE)
    trained = tiny_tokenizer.decode([x for x in enc.labels if x != IGNORE])
    assert trained == "two<|im_end|>four<|im_end|>six<|im_end|>"
    assert end_of_turn_text(SMOLLM2_TEMPLATE, tiny_tokenizer) == "<|im_end|>"


def test_template_that_rewrites_history_is_refused(tiny_tokenizer):
    rewriting = ("{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}"
                 "{{ 'A: (elided)\n' }}{% else %}{{ m.role + ': ' + m.content + '\n' }}{% endif %}"
                 "{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    with pytest.raises(ConfigError, match="built-in") as err:
        check_template(rewriting, tiny_tokenizer)
    assert "not prefix-consistent" in str(err.value)
    # the hint names the way out for a real model's template: a copy marked for generation
    assert ".jinja" in err.value.hint and "{% generation %}" in err.value.hint


def test_unknown_template_and_missing_auto(tiny_tokenizer):
    with pytest.raises(ConfigError, match="did you mean 'chatml'"):
        resolve_template("chatlm", tiny_tokenizer)
    import copy

    bare = copy.deepcopy(tiny_tokenizer)
    bare.chat_template = None
    with pytest.raises(ConfigError, match="no chat template.*built-in"):
        resolve_template("auto", bare)


@pytest.mark.parametrize("name", TEMPLATES)
def test_render_prompt_is_the_training_prefix(tiny_tokenizer, name):
    template = resolve_template(name, tiny_tokenizer)
    messages = as_messages(CONVERSATIONS["multi_system"])
    prompt = render_prompt(messages[:-1], template, tiny_tokenizer)
    full = tiny_tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)
    assert full.startswith(prompt)
    assert full[len(prompt):].strip().startswith("4")


SEAMLESS = ("{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
            "{{ m.content + eos_token }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}"
            "{% endfor %}")


def test_bpe_seam_inside_a_merged_token(tiny_tokenizer):
    """Prompt 'hel' + response 'lo' render as 'hello', which BPE merges into tokens that cross
    the seam: the straddling token is trained, exactly as transformers' mask has it."""
    messages = as_messages([(U, "Say hel"), (A, "lo there")])
    enc = encode_conversation(Conversation(tuple(messages)), tiny_tokenizer, SEAMLESS)
    ids, mask = reference_mask(tiny_tokenizer, messages, SEAMLESS, "all_assistant")
    text = tiny_tokenizer.apply_chat_template(messages, chat_template=SEAMLESS, tokenize=False)
    offsets = tiny_tokenizer(text, add_special_tokens=False,
                             return_offsets_mapping=True)["offset_mapping"]
    seam = len("Say hel")
    assert any(s < seam < e for s, e in offsets)  # the case is really a merged seam
    assert enc.input_ids == ids
    assert [int(x != IGNORE) for x in enc.labels] == mask
