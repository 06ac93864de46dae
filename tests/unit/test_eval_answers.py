"""Answer extraction and majority voting."""

from __future__ import annotations

import pytest

from lmforge.eval.answers import extract, reference_answer, vote
from lmforge.eval.metrics import UNPARSEABLE


def test_extract_takes_the_last_match_and_its_group():
    text = "A looks right, but 答案是：A is wrong... 最后，答案是：C"
    assert extract(text, r"答案是：([A-D])") == "C"
    assert extract("the answer is 42.", r"\d+") == "42"  # no group: the whole match
    assert extract("nothing here", r"答案是：([A-D])") is None
    assert extract("  yes \n", None) == "yes"
    assert extract("   ", None) is None
    assert extract("x=1 or y=2", r"(?:x=(\d))|(?:y=(\d))") == "2"  # first group that matched


def test_reference_answer_falls_back_to_the_whole_reference():
    assert reference_answer("答案是：B", r"答案是：([A-D])") == "B"
    assert reference_answer(" B ", r"答案是：([A-D])") == "B"


def test_vote_majority_and_counts():
    v = vote(["A", "B", "A", None, "A"], [-1.0, -0.1, -2.0, -0.01, -0.5])
    assert v.answer == "A"
    assert v.counts == {"A": 3, "B": 1, UNPARSEABLE: 1}
    assert v.index == 4  # the A sample with the highest log-prob represents the answer


def test_vote_tie_goes_to_the_higher_mean_logprob():
    v = vote(["A", "B", "B", "A"], [-1.0, -0.2, -0.4, -0.9])
    # A: mean -0.95, B: mean -0.3
    assert v.answer == "B" and v.index == 1
    v = vote(["A", "B"], [-0.1, -0.2])
    assert v.answer == "A"


def test_unparseable_samples_only_win_when_nothing_else_answers():
    v = vote([None, None, "C"], [-0.1, -0.1, -5.0])
    assert v.answer == "C" and v.counts[UNPARSEABLE] == 2
    v = vote([None, None], [-3.0, -1.0])
    assert v.answer is None and v.index == 1


def test_vote_needs_samples():
    with pytest.raises(ValueError):
        vote([])
