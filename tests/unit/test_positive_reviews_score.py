"""examples/positive_reviews/score.py's measurement (pure: no model): sentiment, share positive,
distinct-n, the share of the most frequent opening sentence and 4-gram, mean length."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def score():
    path = REPO / "examples/positive_reviews/score.py"
    spec = importlib.util.spec_from_file_location("positive_reviews_score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_sentence(score):
    assert score.first_sentence(" was superb. The cast, too!") == "was superb"
    assert score.first_sentence("I loved it!! Really") == "i loved it"
    assert score.first_sentence(" an odd film\nwith a score") == "an odd film"
    assert score.first_sentence("no end at all") == "no end at all"


def test_a_collapsed_policy_is_caught(score):
    stock = ["I'm so glad you're enjoying the movie. It is great."] * 9 + [
        "was a dull and boring mess, sadly."]
    found = score.measure(stock)
    assert found["top_sentence_share"] == pytest.approx(0.9)
    assert found["top_sentence"] == "i'm so glad you're enjoying the movie"
    assert found["top_opening_share"] == pytest.approx(0.9)
    assert found["distinct_2"] < 0.3
    assert found["positive_share"] == pytest.approx(0.9)
    assert found["mean_sentiment"] > 0.5


def test_varied_reviews_are_not_flagged(score):
    texts = [" was wonderful, with a cast that clearly enjoyed every scene.",
             " drags in the middle, and the jokes are awful.",
             " surprised me: a quiet, moving story about two sisters.",
             " is a boring, terrible waste of an evening."]
    found = score.measure(texts)
    assert found["top_sentence_share"] == 0.25 and found["top_opening_share"] == 0.25
    assert found["distinct_2"] == 1.0 and found["samples"] == 4
    assert found["mean_words"] == pytest.approx(sum(len(t.split()) for t in texts) / 4, abs=1)
    assert found["positive_share"] == 0.5 and -1.0 <= found["mean_sentiment"] <= 1.0
