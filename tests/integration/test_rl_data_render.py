"""Preference/prompt data rendered with the run's chat template (the tiny tokenizer's ChatML and a
built-in one), the reward-model encoding, and the SFT view of preference data."""

from __future__ import annotations

import pytest

from lmforge.data.preference import (KTOExample, PreferenceExample, render_pair,
                                     render_unpaired)
from lmforge.data.preference_build import encode_answer, pair_stats, rm_dataset
from lmforge.data.prompts import prompt_text, render_completion, strip_auto_bos
from lmforge.data.templates import builtin_template
from lmforge.errors import DataError

USER = {"role": "user", "content": "Is it good?"}


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return tiny_tokenizer


def test_pair_renders_prompt_with_generation_header_and_answers_with_end_of_turn(tok):
    pair = render_pair(PreferenceExample(({"role": "system", "content": "S"}, USER), "yes", "no",
                                         0.5, "f:1"), tok.chat_template, tok)
    assert pair.prompt == ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nIs it good?"
                           "<|im_end|>\n<|im_start|>assistant\n")
    assert (pair.chosen, pair.rejected, pair.margin) == ("yes<|im_end|>", "no<|im_end|>", 0.5)
    # prompt + answer is exactly what the template renders for the whole conversation
    full = tok.apply_chat_template([{"role": "system", "content": "S"}, USER,
                                    {"role": "assistant", "content": "yes"}], tokenize=False)
    assert full.startswith(pair.prompt + pair.chosen)


def test_templates_without_generation_markers_and_other_builtins(tok):
    plain_chatml = tok.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", "")
    prompt = prompt_text((USER,), plain_chatml, tok)
    assert render_completion((USER,), "yes", plain_chatml, tok, prompt) == "yes<|im_end|>"
    alpaca = builtin_template("alpaca")
    prompt = prompt_text((USER,), alpaca, tok)
    answer = render_completion((USER,), "yes", alpaca, tok, prompt)
    assert "Is it good?" in prompt and answer.startswith("yes")
    from lmforge.data.render import render_text

    full = render_text([USER, {"role": "assistant", "content": "yes"}], alpaca, tok)
    assert full.startswith(prompt + answer)


def test_unpaired_from_pairs_and_kto_rows(tok):
    rows = render_unpaired(PreferenceExample((USER,), "a", "b"), tok.chat_template, tok)
    assert [(r.completion, r.label) for r in rows] == [("a<|im_end|>", True),
                                                        ("b<|im_end|>", False)]
    (row,) = render_unpaired(KTOExample((USER,), "c", False), tok.chat_template, tok)
    assert row.completion == "c<|im_end|>" and row.label is False


def test_strip_auto_bos_only_when_the_tokenizer_adds_one(tok):
    assert strip_auto_bos("<|bos|>hi", tok) == "<|bos|>hi"  # the tiny tokenizer adds no BOS

    class AddsBos:
        bos_token, bos_token_id = "<s>", 1

        def __call__(self, text):
            return {"input_ids": [1, 5]}

    assert strip_auto_bos("<s>hi", AddsBos()) == "hi"


def test_reward_model_encoding_is_one_tokenization_and_truncates_the_prompt_first(tok):
    pair = render_pair(PreferenceExample((USER,), "a b c", "d"), tok.chat_template, tok)
    ids = encode_answer(pair.prompt, pair.chosen, tok, 1000, "truncate_prompt")
    assert ids == tok(pair.prompt + pair.chosen, add_special_tokens=False)["input_ids"]
    short = encode_answer(pair.prompt, pair.chosen, tok, 8, "truncate_prompt")
    assert len(short) == 8 and tok.decode(short).endswith("a b c<|im_end|>")
    assert encode_answer(pair.prompt, pair.chosen, tok, 8, "drop") is None
    # the SFT meaning of truncate_prompt: an answer longer than max_length is cut from the right
    # (the prompt keeps a quarter of max_length: none of 3 tokens)
    n = len(tok(pair.prompt, add_special_tokens=False)["input_ids"])
    assert encode_answer(pair.prompt, pair.chosen, tok, 3, "truncate_prompt") == ids[n:n + 3]


def test_rm_dataset_margins_and_stats(tok):
    pairs = [render_pair(PreferenceExample((USER,), "a", "b", m), tok.chat_template, tok)
             for m in (None, 2.0)]
    ds, dropped = rm_dataset(pairs, tok, 64, "truncate_prompt", default_margin=0.5)
    assert ds["margin"] == [0.5, 2.0] and dropped == 0
    ds, _ = rm_dataset(pairs[:1], tok, 64, "truncate_prompt", default_margin=None)
    assert "margin" not in ds.column_names
    stats = pair_stats(pairs, tok, 64)
    assert stats["examples"] == 2 and stats["chosen_without_eos"] == 0
    same = render_pair(PreferenceExample((USER,), "a", "a"), tok.chat_template, tok)
    with pytest.raises(DataError, match="no preference to learn"):
        pair_stats([same], tok, 64)


def test_sft_on_preference_data_trains_the_chosen_answers(tmp_path, tok):
    from lmforge.config import validate
    from lmforge.data import pipeline
    from tests.conftest import write_jsonl

    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "yes", "rejected": "no"},
                                               {"instruction": "q2", "output": ["ok", "bad"]}])
    cfg = validate({"stage": "sft", "model": {"path": "builtin:tiny-llama"},
                    "data": {"train": str(path), "format": "preference", "cache": False}})
    built = pipeline.build(cfg, tok, tok.chat_template)
    trained = [tok.decode([t for t in lab if t != -100]) for lab in built.train["labels"]]
    assert trained == ["yes<|im_end|>", "ok<|im_end|>"]
