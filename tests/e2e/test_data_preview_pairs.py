"""`lmforge data preview` for preference and KTO data: the prompt, both answers (or the label)
with the trained text marked as trl will train it, and identical pairs named by file:line."""

from __future__ import annotations

import json

import yaml

from tests.conftest import run_cli, write_jsonl


def U(c):
    return {"role": "user", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


def write_run(tmp_path, stage, train):
    cfg = {"stage": stage, "model": {"path": "builtin:tiny-llama"},
           "data": {"train": str(train), "max_length": 64},
           "train": {"output_dir": str(tmp_path / "out"), "batch_size": 2}}
    path = tmp_path / f"{stage}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_preview_of_conversational_pairs_names_identical_ones(tmp_path, tiny_model_dir):
    rows = [{"chosen": [U("Sky?"), A("Blue.")], "rejected": [U("Sky?"), A("Green.")]},
            {"prompt": [U("Grass?")], "chosen": [A("Green.")], "rejected": [A("Green.")]},
            {"prompt": "Sun?", "chosen": "Yellow.", "rejected": "Blue."}]
    train = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = run_cli("data", "preview", str(write_run(tmp_path, "dpo", train)), "-n", "3",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"example 1 ({train}:1)" in out.stdout
    assert "<|im_start|>user\nSky?<|im_end|>\n<|im_start|>assistant\n⟦Blue.<|im_end|>⟧" \
        in out.stdout
    assert "⟦Green.<|im_end|>⟧" in out.stdout
    assert f"pairs with chosen == rejected (no signal): {train}:2" in out.stdout
    log = "".join(out.stderr.split())  # the log (rich wraps it): what a training run says too
    assert f"havechosen==rejected(nosignal):{train}:2" in log
    assert "data.formatauto:readas'preference'" in log and "identical_pairs: 1" in out.stdout
    js = run_cli("data", "preview", str(write_run(tmp_path, "dpo", train)), "--json",
                 cwd=tmp_path)
    assert json.loads(js.stdout)["identical_pairs"] == 1


def test_preview_of_kto_rows_shows_the_label(tmp_path, tiny_model_dir):
    rows = [{"prompt": [U("Sky?")], "completion": [A("Green.")], "label": False},
            {"prompt": [U("Sky?")], "completion": [A("Blue.")], "label": True}]
    train = write_jsonl(tmp_path / "kto.jsonl", rows)
    out = run_cli("data", "preview", str(write_run(tmp_path, "kto", train)), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "⟦Green.<|im_end|>⟧\n── label: undesirable" in out.stdout
    assert "desirable: 1" in out.stdout and "undesirable: 1" in out.stdout
