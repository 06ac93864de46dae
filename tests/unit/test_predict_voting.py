"""lmforge predict's core with a stub engine: majority voting, vote counts, resume."""

from __future__ import annotations

import json

import pytest

from lmforge.config.eval import GenerationConfig
from lmforge.errors import DataError
from lmforge.eval.inputs import prediction_inputs, to_item
from lmforge.eval.predict import predict
from lmforge.infer.engine import Choice, Completion
from tests.conftest import write_jsonl

# per question: the sampled texts and their mean log-probs
SAMPLES = {
    "q0": (["答案是：A", "答案是：B", "hmm 答案是：A", "答案是：A", "no answer"],
           [-1.0, -0.2, -0.5, -0.9, -0.1]),
    "q1": (["答案是：C", "答案是：D", "答案是：D", "答案是：C", "?"],
           [-0.3, -0.9, -0.8, -0.4, -0.01]),
    "q2": (["答案是：B"] * 5, [-0.5] * 5),
    "q3": (["x", "y", "z", "答案是：D", "w"], [-0.5] * 5),
}


class StubEngine:
    batch_size = 2

    def __init__(self):
        self.calls = []

    def generate(self, chats, gen, logprobs=False, progress=None):
        self.calls.append(([c[-1]["content"] for c in chats], gen))
        out = []
        for chat in chats:
            texts, lps = SAMPLES[chat[-1]["content"]]
            n = gen.num_return_sequences
            out.append(Completion(3, [Choice(t, [1], "stop", lp if logprobs else None)
                                      for t, lp in zip(texts[:n], lps[:n])]))
        return out


def _inputs(tmp_path, n=4):
    return prediction_inputs(write_jsonl(tmp_path / "in.jsonl",
                                         [{"prompt": f"q{i}"} for i in range(n)]))


def test_votes_give_the_majority_answer_and_counts(tmp_path):
    out = tmp_path / "out.jsonl"
    engine = StubEngine()
    counts = predict(engine, _inputs(tmp_path), out, GenerationConfig(seed=7), votes=5,
                     pattern=r"答案是：([A-D])")
    assert counts == {"inputs": 4, "skipped": 0, "written": 4, "retried": 0, "recovered": 0,
                      "fallback": 0, "unparseable": 0}
    recs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["answer"] for r in recs] == ["A", "C", "B", "D"]
    assert recs[0]["votes"] == {"A": 3, "B": 1, "<unparseable>": 1}
    assert recs[0]["prediction"] == "hmm 答案是：A"  # the A sample with the best log-prob
    assert recs[1]["votes"] == {"C": 2, "D": 2, "<unparseable>": 1}  # tie: C has mean -0.35
    assert len(recs[0]["samples"]) == 5 and recs[0]["samples"][1]["answer"] == "B"
    # each input sampled on its own, K answers, with seed + index
    gens = [g for _, g in engine.calls]
    assert all(g.do_sample and g.num_return_sequences == 5 for g in gens)
    assert [g.seed for g in gens] == [7, 8, 9, 10]


def test_resume_skips_finished_inputs_and_drops_a_cut_line(tmp_path):
    out = tmp_path / "out.jsonl"
    items = _inputs(tmp_path)
    predict(StubEngine(), items[:2], out, GenerationConfig(), votes=5, pattern=r"：([A-D])")
    lines = out.read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["prediction"] = "SENTINEL"  # proves the record is not recomputed
    out.write_text(json.dumps(first) + "\n" + lines[1] + "\n" + '{"index": 2, "predi',
                   encoding="utf-8")
    engine = StubEngine()
    counts = predict(engine, items, out, GenerationConfig(), votes=5, pattern=r"：([A-D])")
    assert {k: counts[k] for k in ("inputs", "skipped", "written")} == {
        "inputs": 4, "skipped": 2, "written": 2}
    assert [c[0] for c in engine.calls] == [["q2"], ["q3"]]
    recs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["index"] for r in recs] == [0, 1, 2, 3]
    assert recs[0]["prediction"] == "SENTINEL"


def test_plain_prediction_is_batched(tmp_path):
    out = tmp_path / "out.jsonl"
    engine = StubEngine()
    predict(engine, _inputs(tmp_path, 3), out, GenerationConfig(), pattern=r"：([A-D])")
    assert [c[0] for c in engine.calls] == [["q0", "q1"], ["q2"]]
    recs = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [r["answer"] for r in recs] == ["A", "C", "B"] and "votes" not in recs[0]


def test_input_rows_keep_their_reference(tmp_path):
    item = to_item(0, "f:1", {"instruction": "Classify", "input": "text", "output": "sport"}, {})
    # the parts stay on the message for templates that lay them out (alpaca_stanford)
    assert item.messages == [{"role": "user", "content": "Classify\ntext",
                              "instruction": "Classify", "input": "text"}]
    assert item.reference == "sport"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                        {"role": "user", "content": "again"},
                        {"role": "assistant", "content": "ref"}], "origin": {"id": 3}}
    item = to_item(1, "f:2", row, {}, system="be brief")
    assert [m["role"] for m in item.messages] == ["system", "user", "assistant", "user"]
    assert item.reference == "ref" and item.origin == {"id": 3}
    item = to_item(2, "f:3", {"question": "q?", "answer": "a"}, {"prompt": "question",
                                                                 "response": "answer"})
    assert item.messages[-1]["content"] == "q?" and item.reference == "a"
    with pytest.raises(DataError, match="f:4"):
        to_item(3, "f:4", {"text": "no prompt"}, {})
