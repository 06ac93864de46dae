"""lmforge.distill against a minimal OpenAI-compatible server on 127.0.0.1 (FakeTeacher) that can
be told to fail, delay, hang or rate-limit: concurrency, retries, resume, verification, key
handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_distill_fakeserver import (KEY_ENV, SECRET, FakeTeacher, make_config,
                                                       read_jsonl)


@pytest.fixture
def fake():
    with FakeTeacher() as server:
        yield server


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def run(tree: dict):
    from lmforge.config.distill import validate_distill
    from lmforge.distill import distill

    cfg = validate_distill(tree)
    return cfg, distill(cfg)


def test_concurrency_is_honoured_and_every_record_written_once(tmp_path, fake):
    fake.delay = 0.12
    cfg, rep = run(make_config(tmp_path, fake.url, n=12, concurrency=3))
    assert fake.max_inflight == 3
    assert fake.auth == {f"Bearer {SECRET}"}
    rows = read_jsonl(Path(cfg.output))
    assert sorted(r["distill"]["id"] for r in rows) == sorted(f"r{i}" for i in range(12))
    assert (rep.done, rep.kept, rep.rejected, rep.failed, rep.skipped) == (12, 12, 0, [], 0)
    row = next(r for r in rows if r["distill"]["id"] == "r4")
    assert row["prompt"] == "Q r4: 4 + 9" and row["system"] == "Solve it."
    assert row["response"].endswith("Answer: 13") and row["origin"]["gold"] == 13
    assert fake.bodies[0]["model"] == "fake" and fake.bodies[0]["max_tokens"] == 64


def test_retries_recover_from_429_500_timeouts_and_garbage(tmp_path, fake):
    fake.script = ["429:0", "500", "hang", "503", "garbage", "429:0"]
    fake.hang_s = 1.0
    cfg, rep = run(make_config(tmp_path, fake.url, n=6, concurrency=1, timeout=0.4,
                                 retries={"max_attempts": 8}))
    assert rep.failed == [] and rep.done == 6 and rep.kept == 6
    assert rep.retries == {"HTTP 429": 2, "HTTP 500": 1, "timeout": 1, "HTTP 503": 1,
                           "malformed reply": 1}
    assert len(read_jsonl(Path(cfg.output))) == 6


def test_retry_after_is_respected_by_every_worker(tmp_path, fake):
    fake.delay = 0.1
    fake.script = ["ok", "ok", "ok", "429:0.8"]
    _, rep = run(make_config(tmp_path, fake.url, n=24, concurrency=3))
    assert rep.done == 24 and rep.retries == {"HTTP 429": 1}
    limited = fake.limited_at[0]
    arrivals = sorted(t for times in fake.seen.values() for t in times)
    # in-flight requests may land right after the 429; then nobody sends until it has passed
    assert not [t for t in arrivals if limited + 0.3 < t < limited + 0.75]
    assert max(arrivals) > limited + 0.8


def test_exhausted_and_client_errors_fail_only_their_record_and_rerun_retries(tmp_path, fake):
    fake.fail_ids = {"r2": "500", "r5": "400"}
    tree = make_config(tmp_path, fake.url, n=8, retries={"max_attempts": 3})
    cfg, rep = run(tree)
    failed = {f["id"]: f["reason"] for f in rep.failed}
    assert set(failed) == {"r2", "r5"}
    assert "HTTP 500" in failed["r2"] and "gave up after 3 attempts" in failed["r2"]
    assert failed["r5"].startswith("HTTP 400")
    assert len(fake.seen["r2"]) == 3 and len(fake.seen["r5"]) == 1  # 4xx is not retried
    report = json.loads(Path(rep.output).with_name("train.report.json").read_text())
    assert {f["id"] for f in report["failed"]} == {"r2", "r5"}
    fake.fail_ids = {}
    _, rep2 = run(tree)
    assert (rep2.skipped, rep2.done, rep2.failed) == (6, 2, [])
    ids = [r["distill"]["id"] for r in read_jsonl(Path(cfg.output))]
    assert sorted(ids) == sorted(f"r{i}" for i in range(8))
    before = fake.requests
    _, rep3 = run(tree)  # all finished: nothing is sent
    assert (rep3.skipped, rep3.done, fake.requests) == (8, 0, before)


def test_fatal_auth_error_stops_and_never_shows_the_key(tmp_path, fake):
    from lmforge.distill.teachers import TeacherFatal

    fake.fail_ids = {f"r{i}": "401" for i in range(4)}
    with pytest.raises(TeacherFatal) as info:
        run(make_config(tmp_path, fake.url, n=4))
    assert "401" in str(info.value) and SECRET not in str(info.value)
    assert SECRET not in info.value.hint and KEY_ENV in info.value.hint


def test_gold_verification_keeps_exactly_the_matching_samples(tmp_path, fake):
    fake.wrong = {"r1": None, "r4": None, "r7": None}
    cfg, rep = run(make_config(tmp_path, fake.url, n=9))
    kept = read_jsonl(Path(cfg.output))
    rejected = read_jsonl(Path(cfg.output).with_name("train.rejected.jsonl"))
    assert sorted(r["distill"]["id"] for r in kept) == ["r0", "r2", "r3", "r5", "r6", "r8"]
    assert sorted(r["distill"]["id"] for r in rejected) == ["r1", "r4", "r7"]
    for r in kept:
        assert r["distill"]["answer"] == str(r["origin"]["gold"])
    r4 = next(r for r in rejected if r["distill"]["id"] == "r4")
    assert r4["reason"] == "answer '14' != gold 13" and r4["gold"] == 13
    assert r4["origin"]["a"] == 4 and r4["response"].endswith("Answer: 14")
    assert rep.rejections == {"answer": 3} and (rep.kept, rep.rejected) == (6, 3)


def test_majority_vote_over_samples(tmp_path, fake):
    # r0: all 3 right; r1: sample 2 wrong -> 2/3 majority; r2: samples 1 and 2 wrong, each
    # differently -> three answers, a tie; r3: all wrong, differently -> tie
    fake.wrong = {"r1": {2}, "r2": {1, 2}, "r3": None}
    tree = make_config(tmp_path, fake.url, n=4, num_samples=3,
                       verify={"mode": "majority", "gold_field": None})
    cfg, rep = run(tree)
    kept = read_jsonl(Path(cfg.output))
    got = sorted((r["distill"]["id"], r["distill"]["sample"]) for r in kept)
    assert got == [("r0", 0), ("r0", 1), ("r0", 2), ("r1", 0), ("r1", 1)]
    assert {r["distill"]["kept"] for r in kept if r["distill"]["id"] == "r1"} == {2}
    rejected = read_jsonl(Path(cfg.output).with_name("train.rejected.jsonl"))
    reasons = {(r["distill"]["id"], r["distill"]["sample"]): r["reason"] for r in rejected}
    assert reasons[("r1", 2)].startswith("answer '7' disagrees with the majority (2/3")
    assert all(reasons[(rid, i)] == "no majority: tie at 1/3 votes"
               for rid in ("r2", "r3") for i in range(3))
    seeds = sorted(b["seed"] for b in fake.bodies if "Q r0:" in b["messages"][-1]["content"])
    assert seeds == [0, 1, 2]


def test_injected_crash_after_k_records_then_resume_writes_each_once(tmp_path, fake,
                                                                     monkeypatch):
    from lmforge.distill.store import Store

    fake.wrong = {"r3": None}
    tree = make_config(tmp_path, fake.url, n=10, concurrency=3)
    real_write, calls = Store.write, {"n": 0}

    def crashing_write(self, kept, rejected):
        calls["n"] += 1
        if calls["n"] == 5:  # half of this record's rows reach the disk, then the crash
            self._files[0].write(json.dumps((kept or rejected)[0])[:40])
            self._files[0].flush()
            raise RuntimeError("injected crash")
        return real_write(self, kept, rejected)

    monkeypatch.setattr(Store, "write", crashing_write)
    with pytest.raises(RuntimeError, match="injected crash"):
        run(tree)
    monkeypatch.setattr(Store, "write", real_write)
    cfg, rep = run(tree)
    assert rep.skipped >= 3 and rep.skipped + rep.done == 10 and rep.failed == []
    kept = [r["distill"]["id"] for r in read_jsonl(Path(cfg.output))]
    rejected = [r["distill"]["id"] for r in read_jsonl(Path(cfg.output).with_name(
        "train.rejected.jsonl"))]
    assert sorted(kept + rejected) == sorted(f"r{i}" for i in range(10))
    assert rejected == ["r3"]


def test_messages_format_keep_first_and_seed_per_sample(tmp_path, fake):
    tree = make_config(tmp_path, fake.url, n=3, num_samples=2, keep="first",
                       format="messages", student_prompt="{{ a }} + {{ b }} = ?",
                       student_system="")
    cfg, rep = run(tree)
    kept = read_jsonl(Path(cfg.output))
    assert len(kept) == 3 and rep.rejected == 3
    assert rep.rejections == {"not needed": 3}
    msgs = next(r for r in kept if r["distill"]["id"] == "r1")["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[0]["content"] == "1 + 3 = ?" and msgs[1]["content"].endswith("Answer: 4")
