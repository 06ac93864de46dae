"""``data.truncation`` has one meaning: the SFT encoder's (data/encode.py). The reward model, the
DPO/KTO/ORPO data and the SFT encoder keep exactly the same tokens of an over-long example, and the
ppo/grpo prompt budget is one property of the config."""

from __future__ import annotations

import pytest

from lmforge.data.encode import Settings, encode_conversation
from lmforge.data.preference import PreferenceExample, render_pair
from lmforge.data.preference_build import encode_answer, rm_dataset
from lmforge.data.preference_fit import cut_prompts, fit
from lmforge.data.types import Conversation
from tests.conftest import write_jsonl

LONG_Q = " ".join(f"w{i}" for i in range(40))
LONG_A = " ".join(f"a{i}" for i in range(30))
MODES = ("drop", "truncate_prompt", "truncate_response")


@pytest.fixture(scope="module")
def tok(tiny_tokenizer):
    return tiny_tokenizer


def _pair(tok, question=LONG_Q, chosen=LONG_A, rejected="no"):
    user = {"role": "user", "content": question}
    return render_pair(PreferenceExample((user,), chosen, rejected), tok.chat_template, tok)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("max_length", [16, 40, 70, 1000])
def test_preference_fit_keeps_the_tokens_sft_keeps(tok, mode, max_length):
    from lmforge.data.render import render_spans

    messages = [{"role": "user", "content": LONG_Q}, {"role": "assistant", "content": LONG_A}]
    settings = Settings(max_length=max_length, truncation=mode)
    sft = encode_conversation(Conversation(tuple(messages), {}, "t"), tok, tok.chat_template,
                              settings)
    # SFT's target runs from the answer to the end of the rendered text (a trailing newline too)
    text, _ = render_spans(messages, tok.chat_template, tok)
    prompt = _pair(tok).prompt
    assert text.startswith(prompt)
    ours = fit(prompt, [text[len(prompt):]], tok, settings)
    # the SFT pipeline leaves out an example without trained tokens (a prompt filling max_length)
    sft_dropped = sft.dropped or all(x == -100 for x in sft.labels)
    assert sft_dropped == (ours is None)
    if ours is not None:
        assert ours[2][0] == sft.input_ids and len(sft.input_ids) <= max_length


def test_reward_model_truncate_response_keeps_the_prompt(tok):
    """The bug: in rm, truncate_response cut the prompt (like truncate_prompt)."""
    pair = _pair(tok)
    full = tok(pair.prompt + pair.chosen, add_special_tokens=False)["input_ids"]
    n_prompt = len(tok(pair.prompt, add_special_tokens=False)["input_ids"])
    limit = n_prompt + 10  # room for the whole prompt and part of the answer
    assert len(full) > limit and limit // 4 < n_prompt
    cut_response = encode_answer(pair.prompt, pair.chosen, tok, limit, "truncate_response")
    assert cut_response == full[:limit]  # prompt whole, answer cut at the right
    cut_prompt = encode_answer(pair.prompt, pair.chosen, tok, limit, "truncate_prompt")
    assert cut_prompt == full[-limit:] or len(full) - n_prompt > limit - limit // 4
    assert cut_prompt[-1] == full[-1]  # truncate_prompt keeps the end of the answer...
    assert len(cut_prompt) == limit  # ... if the prompt keeps its quarter
    assert encode_answer(pair.prompt, pair.chosen, tok, limit, "drop") is None
    ds, dropped = rm_dataset([pair], tok, limit, "truncate_response", None)
    assert ds["chosen_ids"][0] == full[:limit] and dropped == 0
    # the pair is fitted as one example: both answers keep the same prompt tokens
    assert ds["rejected_ids"][0][:n_prompt] == full[:n_prompt]


@pytest.mark.parametrize("stage", ["dpo", "kto", "orpo", "rm"])
@pytest.mark.parametrize("mode", MODES)
def test_preference_stages_get_fitted_records(tmp_path, tok, stage, mode):
    from lmforge.config import validate
    from lmforge.data.preference_data import load_records

    question, answer = " ".join(f"w{i}" for i in range(12)), " ".join(f"a{i}" for i in range(9))
    long = _pair(tok, question, answer)
    n_prompt = len(tok(long.prompt, add_special_tokens=False)["input_ids"])
    n_answer = len(tok(long.prompt + long.chosen, add_special_tokens=False)["input_ids"]) \
        - n_prompt
    max_length = n_prompt + n_answer - 6  # too long by a few tokens; either part fits alone
    rows = [{"prompt": question, "chosen": answer, "rejected": "no"},
            {"prompt": "short?", "chosen": "yes", "rejected": "no"}]
    write_jsonl(tmp_path / "p.jsonl", rows)
    cfg = validate({"stage": stage, "model": {"path": "builtin:tiny-llama"},
                    "data": {"train": str(tmp_path / "p.jsonl"), "format": "preference",
                             "max_length": max_length, "truncation": mode}})
    train, _, stats = load_records(cfg, tok, tok.chat_template,
                                   "unpaired" if stage == "kto" else "pair")
    answers = [r.chosen if hasattr(r, "chosen") else r.completion for r in train]
    if mode == "drop":
        # kto fits each answer alone: the short rejected answer of the long prompt stays
        assert stats["train"]["dropped"] == 1 and len(train) == (3 if stage == "kto" else 1)
        assert long.chosen not in answers
    elif mode == "truncate_prompt":  # the answer whole, the prompt cut from the left
        assert long.chosen in answers
        cut = [r.prompt for r, a in zip(train, answers) if a == long.chosen][0]
        assert cut != long.prompt and long.prompt.endswith(cut)
    else:  # the prompt whole, the longer answer cut from the right
        assert long.chosen not in answers
        kept = [a for r, a in zip(train, answers) if r.prompt == long.prompt and a != "no"]
        assert kept and long.chosen.startswith(kept[0]) and kept[0]
    for r, a in zip(train, answers):  # what the trainer tokenizes (special tokens too) fits
        assert len(tok(r.prompt + a)["input_ids"]) <= max_length


@pytest.mark.parametrize("stage", ["ppo", "grpo"])
def test_rl_prompts_lose_their_beginning_to_the_budget(tok, stage):
    from lmforge.config import validate

    cfg = validate({"stage": stage, "model": {"path": "builtin:tiny-llama"},
                    "data": {"max_length": 40},
                    stage: {"reward_functions": ["exact_match"], "max_new_tokens": 16}})
    assert cfg.prompt_budget == 24
    text = _pair(tok).prompt
    (short,), cut = cut_prompts([text], tok, cfg.prompt_budget)
    assert cut == 1 and text.endswith(short)
    ids = tok(short, add_special_tokens=False)["input_ids"]
    assert len(ids) <= 24 and ids == tok(text, add_special_tokens=False)["input_ids"][-24:]
