"""Built-in rewards, the 'module:function' resolver and the weighted reward set."""

from __future__ import annotations

import math
import sys

import pytest

from lmforge.config.methods import RewardFunction
from lmforge.errors import ConfigError, TrainingError
from lmforge.rewards import (build_rewards, contains, exact_match, length_penalty, regex_match,
                             resolve, sentiment)
from lmforge.rewards.combine import RewardSet
from lmforge.rewards.resolve import Reward


def test_exact_match_against_a_gold_column_normalised():
    got = exact_match(["The answer: Paris.", "paris", "Rome"], column="answer",
                      answer=["paris", "Paris", "paris"], prompts=["p"] * 3)
    assert got == [0.0, 1.0, 0.0]
    assert exact_match([" Paris."], answer=["paris"]) == [1.0]
    assert exact_match([" Paris."], answer=["paris"], normalized=False) == [0.0]


def test_exact_match_names_the_missing_column():
    with pytest.raises(ConfigError, match="no column 'gold'.*columns: answer"):
        exact_match(["x"], column="gold", answer=["x"], trainer_state=None)


def test_exact_match_accepts_trl_conversational_completions():
    completion = [{"role": "assistant", "content": "42"}]
    assert exact_match([completion], answer=["42"]) == [1.0]


def test_contains_target_or_column():
    assert contains(["a good day", "bad"], target="GOOD") == [1.0, 0.0]
    assert contains(["a good day", "bad"], target="GOOD", ignore_case=False) == [0.0, 0.0]
    assert contains(["x red y", "blue"], column="colour", colour=["red", "red"]) == [1.0, 0.0]
    with pytest.raises(ConfigError, match="target"):
        contains(["x"])


def test_regex_match_search_and_full():
    assert regex_match(["answer: 12", "none"], pattern=r"\d+") == [1.0, 0.0]
    assert regex_match(["12", "answer: 12"], pattern=r"\d+", full=True) == [1.0, 0.0]
    with pytest.raises(ConfigError, match="bad pattern"):
        regex_match(["x"], pattern="(")
    with pytest.raises(ConfigError, match="pattern"):
        regex_match(["x"])


def test_length_penalty_units():
    assert length_penalty(["a" * 5, "a" * 15], limit=10) == [0.0, -0.5]
    assert length_penalty(["one two three"], limit=2, unit="words", scale=2.0) == [-1.0]
    assert length_penalty(["x", "y"], limit=2, unit="tokens",
                          completion_ids=[[1, 2, 3, 4], [1]]) == [-1.0, 0.0]
    with pytest.raises(ConfigError, match="unit"):
        length_penalty(["x"], unit="bytes")


def test_sentiment_reward_uses_vader():
    pos, neg = sentiment(["This movie was wonderful, I loved it!", "A terrible, boring film."])
    assert pos > 0.5 and neg < -0.5
    assert 0 <= sentiment(["great"], score="pos")[0] <= 1
    with pytest.raises(ConfigError):
        sentiment(["x"], score="joy")


def test_resolve_builtin_module_and_file(tmp_path, monkeypatch):
    assert resolve("exact_match") is exact_match
    with pytest.raises(ConfigError, match="did you mean 'exact_match'"):
        resolve("exact_mach")
    (tmp_path / "myrewards.py").write_text("def short(completions, **kw):\n"
                                           "    return [-len(c) for c in completions]\n"
                                           "NOT_A_FUNCTION = 3\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "myrewards", raising=False)
    assert resolve("myrewards:short")(completions=["ab"]) == [-2]
    assert resolve(f"{tmp_path / 'myrewards.py'}:short")(completions=["abc"]) == [-3]
    assert resolve("myrewards.py:short")(completions=["a"]) == [-1]


def test_resolve_errors_say_what_is_wrong(tmp_path, monkeypatch):
    (tmp_path / "rw.py").write_text("def shorter(completions, **kw):\n    return [0.0]\n"
                                    "VALUE = 3\n")
    (tmp_path / "broken.py").write_text("import not_a_real_module_xyz\n")
    monkeypatch.chdir(tmp_path)
    for name in ("rw", "broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ConfigError, match="module 'nope_mod' not found"):
        resolve("nope_mod:f")
    with pytest.raises(ConfigError, match="has no attribute 'short'; did you mean 'shorter'"):
        resolve("rw:short")
    with pytest.raises(ConfigError, match="'VALUE' is a int, not a function"):
        resolve("rw:VALUE")
    with pytest.raises(ConfigError, match="importing 'broken' failed"):
        resolve("broken:f")
    with pytest.raises(ConfigError, match="file 'missing.py' not found"):
        resolve("missing.py:f")


def test_resolve_searches_reward_paths(tmp_path, monkeypatch):
    extra = tmp_path / "lib"
    extra.mkdir()
    (extra / "pathreward.py").write_text("def one(completions, **kw):\n"
                                         "    return [1.0] * len(completions)\n")
    monkeypatch.delitem(sys.modules, "pathreward", raising=False)
    assert resolve("pathreward:one", paths=[str(extra)])(completions=["a", "b"]) == [1.0, 1.0]


def test_build_rewards_with_kwargs_and_weights_and_all_errors_at_once():
    rewards = build_rewards(["contains", RewardFunction(function="regex_match", weight=0.5,
                                                        kwargs={"pattern": "^a"})])
    assert [r.name for r in rewards] == ["contains", "regex_match"]
    assert rewards[1].function(completions=["ab", "ba"]) == [1.0, 0.0]
    with pytest.raises(ConfigError) as exc:
        build_rewards(["nope1", "nope2:f"])
    assert len(exc.value.problems) == 2


def test_reward_set_weights_and_none_as_not_applicable():
    def half(completions, **kw):
        return [0.5] * len(completions)

    def maybe(completions, flag, **kw):
        return [1.0 if f else None for f in flag]

    rs = RewardSet([Reward("half", half, 2.0), Reward("maybe", maybe, 1.0)])
    totals, means = rs(["p", "p"], ["a", "b"], [[1], [2]], {"flag": [True, False]})
    assert totals == [2.0, 1.0]
    assert means == {"rewards/half": 0.5, "rewards/maybe": 1.0}


def test_reward_set_rejects_wrong_lengths_and_non_numbers():
    with pytest.raises(TrainingError, match="returned 1 values for 2"):
        RewardSet([Reward("bad", lambda completions, **kw: [1.0], 1.0)])(["p"] * 2, ["a", "b"],
                                                                         [[1], [2]], {})
    with pytest.raises(TrainingError, match="not a number"):
        RewardSet([Reward("bad", lambda completions, **kw: ["x"], 1.0)])(["p"], ["a"], [[1]], {})
    totals, means = RewardSet([Reward("none", lambda completions, **kw: [None], 1.0)])(
        ["p"], ["a"], [[1]], {})
    assert totals == [0.0] and math.isnan(means["rewards/none"])
