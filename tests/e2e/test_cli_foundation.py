"""The CLI as a user runs it: exit codes, error text, composition, tiny + info."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import yaml

from tests.conftest import REPO, run_cli


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "lmforge", "--help"], capture_output=True,
                         text=True, cwd=REPO)
    elapsed = time.perf_counter() - start
    assert res.returncode == 0
    for name in ("train", "validate", "tiny", "info"):
        assert name in res.stdout
    assert elapsed < 5  # generous for a loaded CI box; the import itself takes ~0.1 s
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lmforge.cli; "
                           "lmforge.cli.build_parser()"], capture_output=True, text=True)
    assert "torch" not in proc.stderr and "transformers" not in proc.stderr


def test_validate_reports_every_problem_and_exits_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"path": "builtin:tiny-llama"},
                                   "train": {"learing_rate": 1e-4},
                                   "data": {"formt": "alpaca"}}))
    res = run_cli("validate", str(cfg))
    assert res.returncode == 2
    assert "train.learing_rate: unknown key; did you mean 'learning_rate'?" in res.stderr
    assert "data.formt: unknown key; did you mean 'format'?" in res.stderr
    assert "Traceback" not in res.stderr


def test_validate_checks_files_templates_and_extra_args(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": {"path": "builtin:tiny-llama", "template": "chatmll"},
        "data": {"train": str(tmp_path / "missing.jsonl")},
        "train": {"extra": {"gradient_accumulation_stepz": 2}}}))
    res = run_cli("validate", str(cfg))
    assert res.returncode == 2, res.stderr
    assert "data.train: file" in res.stderr and "missing.jsonl' not found" in res.stderr
    assert "did you mean 'chatml'?" in res.stderr
    assert "train.extra.gradient_accumulation_stepz" in res.stderr


def test_validate_ok_and_debug_traceback(tmp_path):
    res = run_cli("validate", "examples/tiny/sft.yaml")
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr
    res = run_cli("--debug", "validate", str(tmp_path / "nope.yaml"))
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_train_composes_data_and_model_files_with_overrides(tmp_path):
    data = tmp_path / "d.yaml"
    model = tmp_path / "m.yaml"
    data.write_text(yaml.safe_dump({"data": {"train": str(REPO / "examples/data/toy_train.jsonl"),
                                             "format": "alpaca", "max_length": 128}}))
    model.write_text(yaml.safe_dump({
        "model": {"path": "builtin:tiny-llama"}, "adapter": {"type": "full"},
        "train": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 2,
                  "learning_rate": 1e-4, "report_to": ["none"], "save_steps": 100}}))
    res = run_cli("train", "--data", str(data), "--model", str(model),
                  "--M.train.learning_rate=3e-4", "--D.data.max_length=64", "train.seed=5")
    assert res.returncode == 0, res.stderr[-3000:]
    saved = yaml.safe_load((tmp_path / "run" / "lmforge_config.yaml").read_text())
    assert saved["train"]["learning_rate"] == 3e-4
    assert saved["data"]["max_length"] == 64
    assert saved["train"]["seed"] == 5
    env = json.loads((tmp_path / "run" / "env.json").read_text())
    for lib in ("python", "torch", "transformers", "trl", "peft", "datasets", "accelerate",
                "lmforge"):
        assert env["versions"][lib], lib
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_tiny_then_info_json_then_plain_transformers_loads(tmp_path):
    out = tmp_path / "t"
    res = run_cli("tiny", str(out), "--arch", "qwen2", "--hidden", "96", "--layers", "3")
    assert res.returncode == 0, res.stderr
    res = run_cli("info", str(out), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["model_type"] == "qwen2" and info["layers"] == 3 and info["hidden_size"] == 96
    assert info["chat_template"] is True
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == info["parameters"]
    tok = AutoTokenizer.from_pretrained(out)
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3


def test_unknown_builtin_model_is_a_clear_error(tmp_path):
    res = run_cli("info", "builtin:tiny-lama")
    assert res.returncode == 1
    assert "did you mean 'builtin:tiny-llama'?" in res.stderr
