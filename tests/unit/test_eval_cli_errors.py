"""`lmforge eval` / `lmforge predict` argument errors: exit codes and messages, no model loaded."""

from __future__ import annotations

from lmforge.cli import main


def test_eval_errors(tmp_path, capsys):
    assert main(["eval"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "missing")]) == 1
    assert "no such directory" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path)]) == 2
    assert "--data-file" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path), "--benchmark", "mmlu"]) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path), "--benchmark", "mmlu",
                 "--data-dir", str(tmp_path)]) == 2
    assert "no 'test/' folder" in capsys.readouterr().err


def test_predict_errors(tmp_path, capsys):
    base = ["predict", "--model", str(tmp_path), "--output", str(tmp_path / "o.jsonl")]
    assert main(base + ["--input", str(tmp_path / "nope.jsonl")]) == 1
    assert "not found" in capsys.readouterr().err
    (tmp_path / "in.jsonl").write_text('{"prompt": "hi"}\n{"text": "no prompt"}\n')
    assert main(base + ["--input", str(tmp_path / "in.jsonl")]) == 1
    assert "in.jsonl:2" in capsys.readouterr().err
    (tmp_path / "ok.jsonl").write_text('{"prompt": "hi"}\n')
    assert main(base + ["--input", str(tmp_path / "ok.jsonl"), "--votes", "0"]) == 2
    assert main(base + ["--input", str(tmp_path / "ok.jsonl"), "--answer-pattern", "(["]) == 2
    assert "not a valid regular expression" in capsys.readouterr().err
