"""lmforge distill pieces without a network or weights: config errors, answer extraction and
voting, record keys and prompts, retry timing, crash-safe store, local-teacher batching."""

from __future__ import annotations

import asyncio
import json
import random
from email.utils import formatdate
from types import SimpleNamespace

import pytest

from lmforge.config.distill import RetryConfig, VerifyConfig, load_distill, validate_distill
from lmforge.errors import ConfigError, DataError, LmforgeError
from tests.conftest import write_jsonl


def base(tmp_path, **over) -> dict:
    tree = {"teacher": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
            "input": str(tmp_path / "in.jsonl"), "prompt": "{{ q }}",
            "output": str(tmp_path / "out.jsonl")}
    tree.update(over)
    return {"distill": tree}


# ---- config ----------------------------------------------------------------------------------
def test_config_errors_name_dotted_paths_and_never_echo_a_pasted_key(tmp_path):
    tree = base(tmp_path, concurency=2, verify={"answer_pattern": "(", "mode": "gold"})
    tree["distill"]["teacher"]["api_key_env"] = "sk-live-abc123"
    with pytest.raises(ConfigError) as info:
        validate_distill(tree)
    text = str(info.value)
    assert "distill.concurency: unknown key; did you mean 'concurrency'?" in text
    assert "distill.verify.answer_pattern: not a valid regex" in text
    assert "distill.teacher.api_key_env: must be the NAME" in text
    assert "sk-live-abc123" not in text and info.value.exit_code == 2


def test_config_teacher_kind_gold_field_and_templates(tmp_path):
    both = base(tmp_path)
    both["distill"]["teacher"]["local"] = "builtin:tiny-llama"
    for tree, msg in [
        (both, "exactly one of them"),
        (base(tmp_path, teacher={"base_url": "http://x/v1"}), "teacher.model is required"),
        (base(tmp_path, verify={"answer_pattern": "A: (.*)"}), "needs verify.gold_field"),
        (base(tmp_path, prompt="{{ q "), "distill.prompt: not a valid Jinja template"),
        (base(tmp_path, teacher={"base_url": "ftp://x", "model": "m"}), "http(s):// URL"),
    ]:
        with pytest.raises(ConfigError, match=None) as info:
            validate_distill(tree)
        assert msg in str(info.value), str(info.value)
    local = validate_distill(base(tmp_path, teacher={"local": "runs/t"})).teacher.local
    assert local.path == "runs/t" and local.batch_size == 8


def test_load_applies_overrides_and_requires_the_distill_key(tmp_path):
    import yaml

    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(base(tmp_path)))
    cfg = load_distill(str(path), ["distill.teacher.base_url=http://h:1/v1/",
                                   "distill.concurrency=7", "distill.teacher.api_key_env=MY_KEY"])
    assert (cfg.teacher.base_url, cfg.concurrency, cfg.teacher.api_key_env) == (
        "http://h:1/v1", 7, "MY_KEY")
    path.write_text(yaml.safe_dump({"distil": base(tmp_path)["distill"]}))
    with pytest.raises(ConfigError) as info:
        load_distill(str(path))
    assert "distil: unknown key; did you mean 'distill'?" in str(info.value)


# ---- verification ----------------------------------------------------------------------------
def test_extract_takes_the_last_match_and_the_right_group():
    from lmforge.distill.verify import extract

    text = "Answer: 3 (draft)\nso...\nAnswer: **41**"
    assert extract(text, r"Answer:\s*\**(?P<answer>[^\n*]+)") == "41"
    assert extract(text, r"Answer: (\d)") == "3"
    assert extract("x = 7", r"\d+") == "7"
    assert extract("nothing", r"Answer: (.*)") is None


def test_normalize_compares_numbers_as_numbers():
    from lmforge.distill.verify import normalize

    assert normalize("42") == normalize("42.0") == normalize(" **42**. ") == normalize(42)
    assert normalize("1,000") == normalize("1000") and normalize("-3") != normalize("3")
    assert normalize("Cara") == normalize("cara") and normalize("Cara", ignore_case=False) == "Cara"


def test_judge_gold_and_majority():
    from lmforge.distill.verify import judge

    gold = VerifyConfig(answer_pattern=r"A: (\S+)", gold_field="g")
    got = judge(["A: 4", "A: 5", "no answer"], gold, 4)
    assert [v.keep for v in got] == [True, False, False]
    assert got[1].reason == "answer '5' != gold 4" and "no answer matched" in got[2].reason
    maj = VerifyConfig(answer_pattern=r"A: (\S+)", mode="majority", min_agreement=0.6)
    assert [v.keep for v in judge(["A: x", "A: X", "A: y"], maj)] == [True, True, False]
    low = judge(["A: x", "A: x", "A: y", "A: z"], maj)  # 2/4 < 0.6
    assert not any(v.keep for v in low) and "below verify.min_agreement" in low[0].reason
    assert [v.keep for v in judge(["a", "b"], None)] == [True, True]


# ---- records ---------------------------------------------------------------------------------
def test_record_keys_are_stable_and_duplicates_are_checked(tmp_path):
    from lmforge.distill.records import load_records, record_key

    assert record_key({"id": 7, "q": "a"}, "id") == "7"
    assert record_key({"q": "a", "b": 1}, "id") == record_key({"b": 1, "q": "a"}, "id")
    assert record_key({"q": "a"}, "id") != record_key({"q": "b"}, "id")
    write_jsonl(tmp_path / "in.jsonl", [{"q": "x"}, {"q": "x"}, {"id": 1, "q": "y"},
                                        {"id": 2, "q": "z"}])
    cfg = validate_distill(base(tmp_path, system="S {{ q }}", student_prompt="just {{ q }}"))
    recs = load_records(cfg)
    assert len(recs) == 3  # the identical duplicate is kept once
    assert recs[1].messages == ({"role": "system", "content": "S y"},
                                {"role": "user", "content": "y"})
    assert recs[1].prompt == "just y" and recs[1].system == "S y"
    write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "q": "y"}, {"id": 1, "q": "other"}])
    with pytest.raises(DataError) as info:
        load_records(cfg)
    assert info.value.line == 2 and info.value.field == "id" and "duplicate id '1'" in str(
        info.value)


def test_bad_records_name_file_line_and_field(tmp_path):
    from lmforge.distill.records import load_records

    write_jsonl(tmp_path / "in.jsonl", [{"q": "a", "g": 1}, {"question": "b", "g": 2}])
    with pytest.raises(DataError) as info:
        load_records(validate_distill(base(tmp_path)))
    assert (info.value.line, info.value.field) == (2, "q")
    write_jsonl(tmp_path / "in.jsonl", [{"q": "a", "g": 1}, {"q": "b"}])
    cfg = validate_distill(base(tmp_path, verify={"answer_pattern": "(.*)", "gold_field": "g"}))
    with pytest.raises(DataError) as info:
        load_records(cfg)
    assert (info.value.line, info.value.field) == (2, "g")
    assert len(load_records(validate_distill(base(tmp_path, limit=1)))) == 1


# ---- retry timing ----------------------------------------------------------------------------
def test_backoff_grows_with_jitter_and_is_capped():
    from lmforge.distill.teachers import backoff_delay

    policy, rng = RetryConfig(backoff=1.0, max_backoff=5.0), random.Random(0)
    for attempt, step in [(0, 1.0), (1, 2.0), (2, 4.0), (5, 5.0)]:
        delays = [backoff_delay(attempt, policy, rng) for _ in range(50)]
        assert all(step / 2 <= d <= step for d in delays) and len(set(delays)) > 1


def test_retry_after_parsing():
    from lmforge.distill.teachers import parse_retry_after

    assert parse_retry_after({"retry-after": "2.5"}) == 2.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({"retry-after": "99999"}) == 600.0
    when = parse_retry_after({"retry-after": formatdate(__import__("time").time() + 30,
                                                        usegmt=True)})
    assert 25 <= when <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None


# ---- store -----------------------------------------------------------------------------------
def _row(key, kept, rejected, i=0):
    return {"distill": {"id": key, "sample": i, "kept": kept, "rejected": rejected}}


def test_store_resume_drops_unfinished_records_and_torn_rows(tmp_path):
    from lmforge.distill.store import Store

    out = tmp_path / "o.jsonl"
    rows = [_row("a", 1, 1), _row("b", 2, 0, 0), _row("b", 2, 0, 1), _row("c", 2, 0, 0)]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"distill": {"id": "d"')
    (tmp_path / "o.rejected.jsonl").write_text(json.dumps(_row("a", 1, 1, 1)) + "\n" +
                                               json.dumps(_row("e", 1, 1, 1)) + "\n")
    store = Store(out)
    assert store.open() == {"a", "b"}  # c lacks a row, d is torn, e lacks its kept row
    assert store.dropped == 2
    with pytest.raises(LmforgeError, match="another lmforge distill"):
        Store(out).open()
    store.write([_row("f", 1, 0)], [])
    store.close()
    ids = [json.loads(x)["distill"]["id"] for x in out.read_text().splitlines()]
    assert ids == ["a", "b", "b", "f"]
    assert [json.loads(x)["distill"]["id"] for x in
            (tmp_path / "o.rejected.jsonl").read_text().splitlines()] == ["a"]


def test_store_refuses_a_foreign_output_file(tmp_path):
    from lmforge.distill.store import Store

    write_jsonl(tmp_path / "o.jsonl", [{"prompt": "p", "response": "r"}])
    with pytest.raises(DataError, match="not a row written by lmforge distill"):
        Store(tmp_path / "o.jsonl").open()


# ---- local teacher ---------------------------------------------------------------------------
class StubEngine:
    def __init__(self):
        self.calls = []

    def generate(self, chats, **opts):
        self.calls.append((len(chats), opts))
        return [SimpleNamespace(choices=[SimpleNamespace(
            text=f"echo {c[-1]['content']}", finish_reason="stop")]) for c in chats]


def test_local_teacher_batches_requests_and_passes_generation_options(tmp_path):
    from lmforge.distill.local import LocalTeacher

    cfg = validate_distill(base(tmp_path, teacher={"local": {"path": "x", "batch_size": 3}},
                                generation={"stop": ["STOP"], "temperature": 0.5, "seed": 1}))
    engine = StubEngine()

    async def go():
        async with LocalTeacher(cfg, engine=engine) as teacher:
            msgs = [[{"role": "user", "content": f"q{i}"}] for i in range(7)]
            return await asyncio.gather(*(teacher.complete(m, 0) for m in msgs))

    samples = asyncio.run(go())
    assert [s.text for s in samples] == [f"echo q{i}" for i in range(7)]  # each its own answer
    assert [n for n, _ in engine.calls] == [3, 3, 1]
    assert engine.calls[0][1] == {"stop": ["STOP"], "max_new_tokens": 1024, "seed": 1,
                                  "do_sample": True, "temperature": 0.5, "top_p": 1.0}
