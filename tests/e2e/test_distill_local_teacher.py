"""End to end: the tiny model (through the ChatEngine) is the teacher of a synthetic task from
examples/distill/make_task.py; then stage sft trains on the printed data: block."""

from __future__ import annotations

import json
import math
import runpy

import yaml

from tests.conftest import REPO, run_cli, write_jsonl


def test_local_teacher_distils_then_sft_trains_on_the_output(tmp_path, tiny_model_dir):
    make = runpy.run_path(str(REPO / "examples/distill/make_task.py"))
    problems = make["problems"](6, seed=3)
    data = write_jsonl(tmp_path / "problems.jsonl", problems)
    out = tmp_path / "distilled" / "train.jsonl"
    cfg = tmp_path / "distill.yaml"
    cfg.write_text(yaml.safe_dump({"distill": {
        "teacher": {"local": {"path": "builtin:tiny-llama", "batch_size": 1}},
        "input": str(data), "system": "Think, then answer.",
        "prompt": "{{ question }}{% if options is defined %} {{ options | join(' ') }}{% endif %}",
        "output": str(out), "drop_truncated": False, "concurrency": 3,
        "generation": {"max_new_tokens": 12, "temperature": 0}}}))
    res = run_cli("distill", str(cfg), "--no-progress", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["distill"]["id"] for r in rows) == sorted(p["id"] for p in problems)

    # the rows hold exactly what the engine generates greedily for those messages
    from lmforge.infer.engine import ChatEngine

    engine = ChatEngine.load(str(tiny_model_dir), batch_size=1)
    by_id = {r["distill"]["id"]: r for r in rows}
    chats = [[{"role": "system", "content": "Think, then answer."},
              {"role": "user", "content": by_id[p["id"]]["prompt"]}] for p in problems]
    want = engine.generate(chats, max_new_tokens=12, do_sample=False)
    for p, completion in zip(problems, want):
        assert by_id[p["id"]]["response"] == completion.text.strip()
        assert by_id[p["id"]]["origin"] == p and by_id[p["id"]]["system"] == "Think, then answer."

    # the printed data: block is all a run config needs to train on the output
    from lmforge import stages
    from lmforge.config import validate

    block = yaml.safe_load(res.stdout[res.stdout.index("data:"):])
    result = stages.run(validate({
        "stage": "sft", "model": {"path": "builtin:tiny-llama"}, "adapter": {"type": "full"},
        "data": {**block["data"], "max_length": 96},
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 3, "batch_size": 2,
                  "learning_rate": 1e-3, "report_to": ["none"], "save_steps": 100,
                  "logging_steps": 1}}))
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["train_examples"] == len(rows) and metrics["global_step"] == 3
    assert math.isfinite(metrics["train_loss"]) and metrics["train_loss"] > 0
