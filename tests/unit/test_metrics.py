"""Task metrics against values computed by hand."""

from __future__ import annotations

import math
import sys

import pytest

from lmforge.errors import DependencyError
from lmforge.eval import metrics as M
from lmforge.eval import text_metrics as T


def test_normalize_strips_case_and_punctuation():
    assert M.normalize("  Sport! ") == "sport"
    assert M.normalize("体育。") == "体育"
    assert M.normalize("New  York,\tCity") == "new york city"
    assert M.normalize("Sport!", case=False, punctuation=False) == "Sport!"


def test_accuracy_normalised_and_unparseable_is_wrong():
    preds = ["Sport.", "tech", None, ""]
    refs = ["sport", "Tech", "news", ""]
    # 2 right; None and "" are unparseable and never match, even an empty reference
    assert M.accuracy(preds, refs) == 0.5
    assert M.accuracy(["Sport."], ["sport"], norm=False) == 0.0


def test_f1_by_hand_with_an_unparseable_prediction():
    preds = ["sport", "Sport!", None, "tech", "news"]
    refs = ["sport", "tech", "tech", "tech", "sport"]
    r = M.precision_recall_f1(preds, refs)
    # classes {news, sport, tech} (unparseable is no class)
    # sport: TP1 FP1 FN1 -> P .5 R .5 F .5 ; tech: TP1 FP0 FN2 -> P 1 R 1/3 F .5 ; news: all 0
    assert r["precision"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert r["recall"] == pytest.approx((0.5 + 1 / 3 + 0) / 3)
    assert r["f1"] == pytest.approx((0.5 + 0.5 + 0) / 3)
    # micro: TP 2, FP 2 (the unparseable one is an abstention), FN 3
    assert r["precision_micro"] == pytest.approx(0.5)
    assert r["recall_micro"] == pytest.approx(0.4)
    assert r["f1_micro"] == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    assert r["unparseable"] == pytest.approx(0.2)
    assert r["recall_micro"] == pytest.approx(M.accuracy(preds, refs))


def test_f1_perfect_and_empty():
    r = M.precision_recall_f1(["a", "b"], ["A", "b"])
    assert r["f1"] == r["f1_micro"] == 1.0
    assert M.precision_recall_f1([], [])["f1"] == 0.0
    with pytest.raises(ValueError):
        M.accuracy(["a"], [])


def test_exact_match():
    assert M.exact_match(["The cat sat.", "a dog"], ["the cat sat", "the dog"]) == 0.5


def test_rouge_english_by_hand():
    r = T.rouge(["The cat sat"], ["the cat sat down"])
    # unigrams 3 of 3 / 3 of 4 -> F = 2*(1*.75)/1.75 ; bigrams 2 of 2 / 2 of 3 -> .8 ; LCS 3
    assert r["rouge1"] == pytest.approx(2 * 0.75 / 1.75)
    assert r["rouge2"] == pytest.approx(0.8)
    assert r["rougeL"] == pytest.approx(2 * 0.75 / 1.75)


def test_rouge_chinese_segmented_with_jieba():
    assert T.tokenize("我爱北京。") == ["我", "爱", "北京"]
    assert T.tokenize("我爱上海") == ["我", "爱", "上海"]
    r = T.rouge(["我爱北京。"], ["我爱上海"])
    # words 我/爱 shared of 3 each -> 2/3 ; bigram 我爱 of 2 -> 1/2 ; LCS 我爱 -> 2/3
    assert r == pytest.approx({"rouge1": 2 / 3, "rouge2": 0.5, "rougeL": 2 / 3})


def test_rouge_is_a_mean_over_examples_and_handles_empty():
    r = T.rouge(["a b", ""], ["a b", "x"])
    assert r["rouge1"] == pytest.approx(0.5)
    assert T.lcs_length(list("abcbdab"), list("bdcaba")) == 4


def test_bleu_by_hand():
    # precisions 5/6, 3/5, 2/4, 1/3; equal lengths -> no brevity penalty
    want = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert T.bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(
        want, abs=1e-6)
    assert T.bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(1.0)
    assert T.bleu([], []) == 0.0


def test_perplexity_and_pairwise_accuracy():
    assert M.perplexity([math.log(2), math.log(8)]) == pytest.approx(4.0)
    assert M.perplexity([math.log(2), math.log(8)], weights=[3, 1]) == pytest.approx(
        math.exp((3 * math.log(2) + math.log(8)) / 4))
    assert M.pairwise_accuracy([1.0, 2.0, 3.0], [0.0, 2.0, 4.0]) == pytest.approx(1 / 3)


def test_user_metric_module_function(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        "def length_ratio(preds, refs):\n"
        "    return sum(len(p) for p in preds) / sum(len(r) for r in refs)\n"
        "def both(preds, refs):\n    return {'x': 1, 'y': 0.5}\n")
    monkeypatch.chdir(tmp_path)  # user metrics are imported from the working directory only
    out = M.compute(["my_metrics:length_ratio", "my_metrics:both"], ["ab", "c"], ["abcd", "ef"])
    assert out == {"length_ratio": 0.5, "x": 1.0, "y": 0.5}
    from lmforge.errors import ConfigError

    with pytest.raises(ConfigError, match="my_metrics:nope"):
        M.compute(["my_metrics:nope"], ["a"], ["a"])


def test_compute_uses_extracted_answers_for_label_metrics():
    preds = ["reasoning... 答案是：B", "答案是：C", "no idea"]
    refs = ["答案是：B", "答案是：A", "答案是：C"]
    out = M.compute(["accuracy", "f1", "exact_match"], preds, refs,
                    answers=["B", "C", None], gold=["B", "A", "C"])
    assert out["accuracy"] == pytest.approx(1 / 3)
    assert out["unparseable"] == pytest.approx(1 / 3)
    assert out["exact_match"] == pytest.approx(0.0)  # whole texts differ


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # import now raises ImportError
    with pytest.raises(DependencyError) as err:
        T.bleu(["a"], ["a"])
    assert err.value.extra == "eval" and "lmforge[eval]" in err.value.hint
    monkeypatch.setitem(sys.modules, "jieba", None)
    with pytest.raises(DependencyError):
        T.rouge(["中文"], ["中文"])
    assert T.rouge(["english only"], ["english only"])["rouge1"] == 1.0  # no jieba needed
