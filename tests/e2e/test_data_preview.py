"""`lmforge data preview`: marked examples + statistics, --json, and clear data errors."""

from __future__ import annotations

import json

import yaml

from tests.conftest import run_cli, write_jsonl


def write_run(tmp_path, train, **data):
    cfg = {"stage": "sft", "model": {"path": "builtin:tiny-llama", "template": "chatml"},
           "data": {"train": str(train), "format": "alpaca", "max_length": 64,
                    "cache_dir": str(tmp_path / "cache"), **data},
           "train": {"output_dir": str(tmp_path / "out"), "batch_size": 2}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_preview_marks_trained_spans_and_json_stats(tmp_path, tiny_model_dir):
    train = write_jsonl(tmp_path / "t.jsonl", [
        {"instruction": f"question {i}", "output": f"answer {i}"} for i in range(5)])
    run = write_run(tmp_path, train)
    out = run_cli("data", "preview", str(run), "-n", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("── example") == 2
    assert "⟦answer 0<|im_end|>⟧" in out.stdout and "⟦answer 2" not in out.stdout
    assert "<|im_start|>user\nquestion 0<|im_end|>" in out.stdout  # prompt shown, unmarked
    assert "examples: 5" in out.stdout and "pad_fraction" in out.stdout
    js = run_cli("data", "preview", str(run), "--json", "data.max_length=12", cwd=tmp_path)
    assert js.returncode == 0, js.stderr
    stats = json.loads(js.stdout)
    assert {"examples", "trained_tokens", "total_tokens", "zero_trained", "truncated", "dropped",
            "pad_fraction"} <= set(stats)
    assert stats["examples"] == 5 and stats["truncated"] == 5
    assert 0 < stats["trained_tokens"] < stats["total_tokens"] == 5 * 12


def test_preview_reports_bad_rows_with_file_line_field(tmp_path, tiny_model_dir):
    train = tmp_path / "t.jsonl"
    train.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "outptu": "d"}\n')
    out = run_cli("data", "preview", str(write_run(tmp_path, train)), cwd=tmp_path)
    assert out.returncode == 1
    assert f"error: {train}:2: field 'output' missing" in out.stderr
    assert "data.columns" in out.stderr  # the hint
