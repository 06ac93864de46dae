"""Built-in reward shaping (lmforge.rewards.shaping) on hand-made completions: each penalty is 0
for a clean continuation of a review and negative for the degenerate text a policy hacking a
sentiment reward writes; all of them resolve by name."""

from __future__ import annotations

import pytest

from lmforge.errors import ConfigError
from lmforge.rewards import build_rewards, length_bounds, on_task, repetition_penalty, resolve
from lmforge.rewards.shaping import echo_share, repeated_share

PROMPT = "I went in expecting a dull period drama, but the first hour"
CLEAN = "moves quickly, and the two leads carry every scene with real warmth."
STOCK = "I'm so glad you're enjoying the movie! Thank you for sharing."
ECHO = "I went in expecting a dull period drama, but the first hour"


def test_repetition_penalty_by_hand():
    assert repetition_penalty([CLEAN]) == [0.0]
    # words: great great great great -> bigrams (gg, gg, gg): 2 of 3 repeat an earlier one
    assert repetition_penalty(["Great great great great"]) == [pytest.approx(-2 / 3)]
    assert repeated_share("a b c a b c", 3) == pytest.approx(1 / 4)  # abc bca cab abc
    assert repetition_penalty(["good. good. good."], n=1, scale=0.5) == [pytest.approx(-1 / 3)]
    assert repetition_penalty([""]) == [0.0]
    with pytest.raises(ConfigError, match="n must be at least 1"):
        repetition_penalty(["x"], n=0)


def test_length_bounds_by_hand():
    texts = ["one two", "one two three four", "w " * 12]
    assert length_bounds(texts, min_words=4, max_words=8) == [
        pytest.approx(-0.5), 0.0, pytest.approx(-0.5)]
    assert length_bounds(["w " * 100], max_words=8, scale=2.0) == [-2.0]  # capped at -scale
    assert length_bounds([""], min_words=5) == [-1.0]
    for bad in ({}, {"min_words": 9, "max_words": 3}, {"min_words": 0}):
        with pytest.raises(ConfigError, match="length_bounds"):
            length_bounds(["x"], **bad)


def test_on_task_penalises_addressing_the_reader_and_echoing_the_prompt():
    prompts = [PROMPT] * 4
    clean, stock, echo, you = on_task([CLEAN, STOCK, ECHO, "Your evening is well spent here."],
                                      prompts=prompts)
    assert clean == 0.0
    assert stock == -1.0 and you == -1.0
    assert echo == -1.0  # every 4-gram copied from the prompt
    assert echo_share("but the first hour flies by", PROMPT) == pytest.approx(1 / 3)
    # phrases and the reader's words are configurable; the penalty is capped at -scale
    assert on_task(["Thank you so much"], prompts=[""], phrases=[], address_words=[]) == [0.0]
    assert on_task([STOCK + " " + ECHO], prompts=[PROMPT], scale=0.5) == [-0.5]
    assert on_task(["a tour de force"]) == [0.0]  # no prompts given: only the address check


def test_on_task_accepts_trl_conversational_completions():
    convo = [[{"role": "assistant", "content": STOCK}], [{"role": "assistant", "content": CLEAN}]]
    assert on_task(convo, prompts=["", ""]) == [-1.0, 0.0]


def test_shaping_rewards_resolve_by_name_with_kwargs_and_weights():
    from lmforge.config.methods import RewardFunction

    assert resolve("on_task") is on_task and resolve("repetition_penalty") is repetition_penalty
    rewards = build_rewards(["repetition_penalty",
                             RewardFunction(function="length_bounds", weight=0.5,
                                            kwargs={"max_words": 3})])
    assert [r.name for r in rewards] == ["repetition_penalty", "length_bounds"]
    assert rewards[1].weight == 0.5
    assert rewards[1].function(completions=["one two three four five six"]) == [-1.0]
    with pytest.raises(ConfigError, match="did you mean 'on_task'"):
        resolve("on_tsk")
    with pytest.raises(ConfigError, match="scale must be >= 0"):
        on_task(["x"], scale=-1)
