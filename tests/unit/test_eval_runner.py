"""Generation-based evaluation with a stub engine: prompt/reference split, extraction, voting."""

from __future__ import annotations

import pytest

from lmforge.config.eval import EvalConfig
from lmforge.data.types import Conversation, Text
from lmforge.errors import DataError
from lmforge.eval.runner import evaluate, samples_from, split_conversation
from lmforge.infer.engine import Choice, Completion


class Stub:
    def __init__(self, answers: dict[str, list[tuple[str, float]]]):
        self.answers, self.seen = answers, []

    def generate(self, chats, gen, logprobs=False, progress=None):
        self.seen.append(chats)
        return [Completion(1, [Choice(t, [0], "stop", lp)
                               for t, lp in self.answers[c[-1]["content"]]
                               [:gen.num_return_sequences]]) for c in chats]


def conv(*turns, origin=None):
    roles = ["user", "assistant"] * len(turns)
    return Conversation(tuple({"role": r, "content": t} for r, t in zip(roles, turns)),
                        origin or {}, "f:1")


def test_reference_is_the_last_assistant_turn():
    s = split_conversation(conv("hi", "hello", "topic?", "sport", origin={"id": 7}))
    assert s.messages == [{"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "hello"},
                          {"role": "user", "content": "topic?"}]
    assert s.reference == "sport" and s.origin == {"id": 7}
    assert len(samples_from([conv("a", "b")] * 5, max_samples=2)) == 2
    with pytest.raises(DataError, match="no conversations"):
        samples_from([Text("raw text")])


def test_metrics_on_extracted_answers_and_records():
    samples = samples_from([conv("q1", "答案是：B"), conv("q2", "答案是：C"), conv("q3", "A")])
    engine = Stub({"q1": [("想想… 答案是：B", -1.0)], "q2": [("答案是：D", -1.0)],
                   "q3": [("不知道", -1.0)]})
    ecfg = EvalConfig(metrics=["accuracy", "f1"], answer_pattern=r"答案是：([A-D])")
    metrics, records = evaluate(engine, samples, ecfg)
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    assert metrics["unparseable"] == pytest.approx(1 / 3)
    assert [r["extracted"] for r in records] == ["B", "D", None]
    assert [r["correct"] for r in records] == [True, False, False]
    assert records[0]["input"] == [{"role": "user", "content": "q1"}]
    assert records[0]["reference"] == "答案是：B" and records[0]["origin"] == {}


def test_several_samples_are_voted():
    samples = samples_from([conv("q", "答案是：A")])
    engine = Stub({"q": [("答案是：B", -0.1), ("答案是：A", -0.5), ("答案是：A", -0.9)]})
    ecfg = EvalConfig(metrics=["accuracy"], answer_pattern=r"答案是：([A-D])",
                      generation={"do_sample": True, "num_return_sequences": 3})
    metrics, records = evaluate(engine, samples, ecfg)
    assert metrics["accuracy"] == 1.0
    assert records[0]["votes"] == {"B": 1, "A": 2} and records[0]["prediction"] == "答案是：A"
