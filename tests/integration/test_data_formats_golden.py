"""Golden boundaries for TRL's conversational formats: the prompt/answer split trl computes from
lmforge's rendered pair (its common-prefix rule over prompt and prompt + answer) is exactly the
assistant mask of the tokenizer's own ``apply_chat_template(..., return_assistant_tokens_mask)``,
for every built-in template and the tiny tokenizer's own, at BPE seams too; conversational
prompt-completion rows get the SFT labels of the same mask."""

from __future__ import annotations

import pytest
from trl.data_utils import common_prefix_length

from lmforge.data.encode import IGNORE, Settings, encode_conversation
from lmforge.data.formats import converter
from lmforge.data.pipeline import ENCODERS  # noqa: F401 - registers the preference formats
from lmforge.data.preference import render_pair, render_unpaired
from lmforge.data.templates import builtin_names, resolve_template

PROMPTS = {
    "single": [{"role": "user", "content": "Sky?"}],
    "system_multi": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": "Q:"}],
    "cjk": [{"role": "user", "content": "今天天气很好吗？"}],
}
ANSWERS = [("Blue.", "Green, no doubt."), ("A:B", "AB"), ("很好，模型训练。", "🚀 café")]


def last_run(mask: list[int]) -> list[int]:
    """Positions of the last contiguous run of ones."""
    last = max(i for i, m in enumerate(mask) if m)
    first = last
    while first > 0 and mask[first - 1]:
        first -= 1
    return list(range(first, last + 1))


def reference(tokenizer, messages, template):
    ref = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=True,
                                        return_dict=True, return_assistant_tokens_mask=True)
    return list(ref["input_ids"]), last_run(list(ref["assistant_masks"]))


def trl_split(tokenizer, prompt: str, answer: str):
    """trl's DPO/KTO tokenization of a rendered example: the answer starts where the tokenized
    prompt and prompt + answer diverge."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    full = tokenizer(prompt + answer)["input_ids"]
    return full, common_prefix_length(prompt_ids, full)


@pytest.mark.parametrize("name", builtin_names() + ["auto"])
@pytest.mark.parametrize("case", list(PROMPTS))
def test_conversational_preference_boundary_equals_the_template_mask(tiny_tokenizer, name, case):
    template = resolve_template(name, tiny_tokenizer)
    convert = converter("preference", {})
    for chosen, rejected in ANSWERS:
        explicit = convert({"prompt": PROMPTS[case], "chosen": [{"role": "assistant",
                                                                 "content": chosen}],
                            "rejected": [{"role": "assistant", "content": rejected}]}, {}, "f:1")
        implicit = convert({"chosen": PROMPTS[case] + [{"role": "assistant", "content": chosen}],
                            "rejected": PROMPTS[case] + [{"role": "assistant",
                                                          "content": rejected}]}, {}, "f:1")
        assert implicit == explicit
        pair = render_pair(explicit, template, tiny_tokenizer)
        for answer, text in ((chosen, pair.chosen), (rejected, pair.rejected)):
            ids, span = reference(tiny_tokenizer, PROMPTS[case] + [
                {"role": "assistant", "content": answer}], template)
            full, start = trl_split(tiny_tokenizer, pair.prompt, text)
            assert full == ids[:len(full)], (name, case, answer)
            assert list(range(start, len(full))) == span, (name, case, answer)


@pytest.mark.parametrize("name", ["chatml", "llama3", "auto"])
def test_conversational_kto_boundary_equals_the_template_mask(tiny_tokenizer, name):
    template = resolve_template(name, tiny_tokenizer)
    row = {"prompt": PROMPTS["system_multi"], "completion": [{"role": "assistant",
                                                              "content": "A:B"}], "label": False}
    [unpaired] = render_unpaired(converter("kto", {})(row, {}, "f:1"), template, tiny_tokenizer)
    ids, span = reference(tiny_tokenizer, row["prompt"] + row["completion"], template)
    full, start = trl_split(tiny_tokenizer, unpaired.prompt, unpaired.completion)
    assert full == ids[:len(full)] and list(range(start, len(full))) == span


@pytest.mark.parametrize("name", builtin_names() + ["auto"])
def test_conversational_prompt_completion_sft_labels_equal_the_template_mask(tiny_tokenizer,
                                                                            name):
    template = resolve_template(name, tiny_tokenizer)
    row = {"prompt": PROMPTS["system_multi"], "completion": [{"role": "assistant",
                                                              "content": "A:B"}]}
    conv = converter("prompt_completion", {})(row, {}, "f:1")
    enc = encode_conversation(conv, tiny_tokenizer, template, Settings(train_on="all_assistant"))
    ref = tiny_tokenizer.apply_chat_template(conv.as_list(), chat_template=template,
                                             tokenize=True, return_dict=True,
                                             return_assistant_tokens_mask=True)
    assert enc.input_ids == list(ref["input_ids"])
    assert [lab != IGNORE for lab in enc.labels] == [bool(m) for m in ref["assistant_masks"]]
