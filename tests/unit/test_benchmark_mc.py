"""Multiple-choice benchmarks: the published file layouts and exact accuracy from a stub scorer."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lmforge.errors import ConfigError, DataError
from lmforge.eval import benchmark as B


def _csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)


def make_mmlu(root: Path) -> Path:
    """hendrycks/test layout: data/{dev,test}/<subject>_<split>.csv, no header."""
    d = root / "data"
    _csv(d / "dev" / "math_dev.csv", [["What is 1+1?", "1", "2", "3", "4", "B"],
                                      ["Sky?", "red", "green", "blue", "black", "C"]])
    _csv(d / "test" / "math_test.csv", [["Which, with a comma?", "a", "b", "c", "d", "A"],
                                        ["two?", "one", "two", "three", "four", "B"],
                                        ["sky color?", "red", "green", "blue", "black", "C"]])
    _csv(d / "dev" / "bio_dev.csv", [["Cells?", "x", "y", "z", "w", "A"]])
    _csv(d / "test" / "bio_test.csv", [["cell?", "x", "y", "z", "w", "D"]])
    return root


def stub_scorer(calls: list):
    """Answers C when the question mentions the sky, else B (log-likelihood 0 vs -1)."""
    def score(prompts, conts):
        calls.append((prompts, conts))
        out = []
        for p in prompts:
            last = p[-1]["content"] if isinstance(p, list) else p.rsplit("\n\n", 1)[-1]
            pick = "C" if "sky" in last.lower() else "B"
            out.append([0.0 if c.strip() == pick else -1.0 for c in conts])
        return out
    return score


@pytest.mark.parametrize("chat", [False, True])
def test_mmlu_accuracy_per_subject_and_overall(tmp_path, chat):
    data = B.load("mmlu", make_mmlu(tmp_path))
    assert list(data) == ["bio", "math"]
    assert data["math"][1][0].question == "Which, with a comma?"  # quoted CSV field
    calls: list = []
    results, records = B.run(data, stub_scorer(calls), shots=1, chat=chat, batch=2)
    # math: A wrong (B), two? right (B), sky right (C) -> 2/3 ; bio: D wrong -> 0/1
    assert results["subjects"]["math"] == {"accuracy": pytest.approx(2 / 3), "correct": 2,
                                           "total": 3}
    assert results["subjects"]["bio"]["accuracy"] == 0.0
    assert results["accuracy"] == pytest.approx(0.5) and results["total"] == 4
    assert results["accuracy_macro"] == pytest.approx(1 / 3)
    assert [r["prediction"] for r in records] == ["B", "B", "B", "C"]
    assert calls[0][1] == (["A", "B", "C", "D"] if chat else [" A", " B", " C", " D"])


def test_raw_few_shot_prompt_layout(tmp_path):
    data = B.load("mmlu", make_mmlu(tmp_path))
    dev, items = data["math"]
    prompt = B.build_prompt(items[1], dev[:1], chinese=False, chat=False)
    assert prompt == ("The following are multiple choice questions (with answers) about math."
                      "\n\nWhat is 1+1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
                      "two?\nA. one\nB. two\nC. three\nD. four\nAnswer:")
    chat = B.build_prompt(items[1], dev[:1], chinese=False, chat=True)
    assert [m["role"] for m in chat] == ["user", "assistant", "user"]
    assert chat[1]["content"] == "B" and chat[2]["content"].endswith("Answer:")


def test_ceval_layout_val_split_and_no_answers_in_test(tmp_path):
    header = ["id", "question", "A", "B", "C", "D", "answer"]
    _csv(tmp_path / "dev" / "law_dev.csv", [header + ["explanation"],
                                            ["0", "法律？", "甲", "乙", "丙", "丁", "A", "因为"]])
    _csv(tmp_path / "val" / "law_val.csv", [header, ["0", "天空？", "红", "绿", "蓝", "黑", "C"],
                                            ["1", "问题？", "甲", "乙", "丙", "丁", "D"]])
    _csv(tmp_path / "test" / "law_test.csv", [header[:-1], ["0", "问题？", "甲", "乙", "丙", "丁"]])
    data = B.load("ceval", tmp_path)  # default split: val
    assert data["law"][0][0].answer == "A" and len(data["law"][1]) == 2
    prompt = B.build_prompt(data["law"][1][0], data["law"][0], chinese=True, chat=False)
    assert prompt.startswith("以下是中国关于law考试的单项选择题，请选出其中的正确答案。\n\n法律？")
    assert "答案：A\n\n" in prompt and prompt.endswith("D. 黑\n答案：")

    def sky_is_c(prompts, conts):  # 天空 -> C, else A
        return [[0.0 if c == ("C" if "天空" in p.rsplit("\n\n", 1)[-1] else "A") else -1.0
                 for c in conts] for p in prompts]
    results, _ = B.run(data, sky_is_c, shots=1, chinese=True)
    assert results["accuracy"] == pytest.approx(0.5)
    with pytest.raises(DataError, match="--split val|without an answer"):
        B.load("ceval", tmp_path, split="test")


def test_cmmlu_layout_with_index_column(tmp_path):
    _csv(tmp_path / "dev" / "history.csv", [["", "Question", "A", "B", "C", "D", "Answer"],
                                            ["0", "谁？", "甲", "乙", "丙", "丁", "B"]])
    _csv(tmp_path / "test" / "history.csv", [["", "Question", "A", "B", "C", "D", "Answer"],
                                             ["0", "天空？", "甲", "乙", "丙", "丁", "C"],
                                             ["1", "谁？", "甲", "乙", "丙", "丁", "A"]])
    data = B.load("cmmlu", tmp_path)
    q = data["history"][1][0]
    assert (q.question, q.options, q.answer) == ("天空？", ("甲", "乙", "丙", "丁"), "C")
    results, _ = B.run(data, lambda ps, cs: [[0.0 if c == "C" else -1.0 for c in cs] for _ in ps],
                       chinese=True)
    assert results["accuracy"] == pytest.approx(0.5)


def test_layout_errors(tmp_path):
    with pytest.raises(ConfigError, match="no 'test/' folder"):
        B.load("mmlu", tmp_path)
    make_mmlu(tmp_path)
    with pytest.raises(ConfigError, match="chem"):
        B.load("mmlu", tmp_path, subjects=["chem"])
    with pytest.raises(ConfigError, match="unknown benchmark"):
        B.load("gsm8k", tmp_path)
    _csv(tmp_path / "data" / "test" / "bad_test.csv", [["q", "a", "b", "c", "d", "E"]])
    with pytest.raises(DataError, match=r"bad_test.csv:1: field 'answer'"):
        B.load("mmlu", tmp_path, subjects=["bad"])
