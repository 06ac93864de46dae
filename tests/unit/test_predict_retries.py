"""lmforge predict --retries N --fallback VALUE with a scripted engine: an unparseable answer is
sampled again (a new seed per attempt), then falls back; every outcome is counted."""

from __future__ import annotations

import json

from lmforge.config.eval import GenerationConfig
from lmforge.eval.inputs import prediction_inputs
from lmforge.eval.predict import RETRY_SEED, Retry, predict
from lmforge.infer.engine import Choice, Completion
from tests.conftest import write_jsonl

# per question: the texts of the first, second, third ... attempt
SCRIPT = {"q0": ["答案是：A"],  # parsed at once
          "q1": ["hmm", "答案是：C"],  # parsed on the first retry
          "q2": ["no", "still no", "never", "nope"]}  # never parsed


class ScriptedEngine:
    batch_size = 4

    def __init__(self):
        self.seeds: dict[str, list] = {}

    def generate(self, chats, gen, logprobs=False, progress=None):
        out = []
        for chat in chats:
            q = chat[-1]["content"]
            tries = self.seeds.setdefault(q, [])
            tries.append((gen.seed, gen.do_sample))
            text = SCRIPT[q][min(len(tries), len(SCRIPT[q])) - 1]
            out.append(Completion(3, [Choice(text, [1], "stop", -0.5 if logprobs else None)]))
        return out


def _run(tmp_path, retry: Retry, pattern="答案是：([A-D])"):
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": q} for q in SCRIPT])
    out = tmp_path / "out.jsonl"
    engine = ScriptedEngine()
    counts = predict(engine, prediction_inputs(str(src), {}, None), out, GenerationConfig(),
                     pattern=pattern, retry=retry)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return counts, records, engine


def test_retries_then_fallback_gives_every_input_one_answer(tmp_path):
    counts, recs, engine = _run(tmp_path, Retry(retries=2, fallback="A"))
    assert [r["answer"] for r in recs] == ["A", "C", "A"]
    assert "attempts" not in recs[0] and recs[1]["attempts"] == 2 and recs[2]["attempts"] == 3
    assert recs[2]["fallback"] is True and "fallback" not in recs[1]
    assert counts == {"inputs": 3, "skipped": 0, "written": 3, "retried": 2, "recovered": 1,
                      "fallback": 1, "unparseable": 0}
    # greedy first, then sampled retries, each with its own seed
    assert engine.seeds["q2"] == [(None, False), (2 + RETRY_SEED, True),
                                  (2 + 2 * RETRY_SEED, True)]


def test_without_fallback_the_unparseable_are_counted_and_left_empty(tmp_path):
    counts, recs, _ = _run(tmp_path, Retry(retries=0))
    assert [r["answer"] for r in recs] == ["A", None, None]
    assert counts["unparseable"] == 2 and counts["retried"] == 0 and counts["fallback"] == 0


def test_without_a_pattern_an_empty_text_is_unparseable(tmp_path):
    SCRIPT["q3"] = ["", "  ", "fine"]
    try:
        src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "q3"}])
        out = tmp_path / "out.jsonl"
        counts = predict(ScriptedEngine(), prediction_inputs(str(src), {}, None), out,
                         GenerationConfig(), retry=Retry(retries=3))
        rec = json.loads(out.read_text())
        assert rec["prediction"] == "fine" and rec["attempts"] == 3
        assert counts["recovered"] == 1
    finally:
        del SCRIPT["q3"]
