"""Evaluation edges on the tiny model: --rope-scaling on every inference command (mapped to
model.rope_scaling), overrides refused by commands that have no run config, one meaning of
--model (a model config YAML; the old `predict/eval --model DIR` is a deprecated alias), predict's
fallback answers counted in its report, and `info --tree` / totals with the adapter."""

from __future__ import annotations

import json

import pytest

from lmforge.cli import main
from tests.conftest import REPO, write_jsonl

TOY = REPO / "examples/data/toy_eval.jsonl"


@pytest.fixture
def ropes(monkeypatch):
    """The rope_scaling each model load was asked for (model/loader.py's rope_config)."""
    from lmforge.model import loader

    seen = []
    original = loader.rope_config

    def spy(path, cfg):
        seen.append(cfg.rope_scaling)
        config = original(path, cfg)
        if config is not None:
            seen.append(config.get_text_config().rope_parameters)
        return config

    monkeypatch.setattr(loader, "rope_config", spy)
    return seen


def _check(seen, kind: str, factor: float) -> None:
    assert seen[0].type == kind and seen[0].factor == factor
    assert seen[1]["rope_type"] == kind and seen[1]["factor"] == factor


def test_rope_scaling_reaches_chat_and_serve(ropes, monkeypatch):
    from lmforge.infer import repl
    from lmforge.serve import server

    engines = []
    monkeypatch.setattr(repl, "repl", lambda engine, gen, system, tools=None:
                        engines.append(engine) or 0)
    assert main(["chat", "builtin:tiny-llama", "--rope-scaling", "dynamic:2"]) == 0
    _check(ropes, "dynamic", 2.0)
    assert engines[0].model.config.rope_parameters["rope_type"] == "dynamic"
    ropes.clear()
    monkeypatch.setattr(server, "serve", lambda engine, *a, **k: engines.append(engine))
    pytest.importorskip("fastapi")
    assert main(["serve", "builtin:tiny-llama", "--rope-scaling", "linear:4"]) == 0
    _check(ropes, "linear", 4.0)


def test_rope_scaling_reaches_predict_and_eval(ropes, tmp_path):
    inputs = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "hi"}])
    assert main(["predict", "builtin:tiny-llama", "--input", str(inputs), "--output",
                 str(tmp_path / "a.jsonl"), "--max-new-tokens", "2", "--rope-scaling",
                 "linear:2", "--no-progress"]) == 0
    _check(ropes, "linear", 2.0)
    ropes.clear()
    assert main(["eval", "builtin:tiny-llama", "--data-file", str(TOY), "--max-samples", "2",
                 "--max-new-tokens", "2", "--rope-scaling", "dynamic:3", "--no-progress",
                 "--output-dir", str(tmp_path / "ev")]) == 0
    _check(ropes, "dynamic", 3.0)


def test_bad_rope_scaling_is_a_config_error(capsys):
    assert main(["chat", "builtin:tiny-llama", "--rope-scaling", "yarn:2"]) == 2
    assert "--rope-scaling 'yarn:2'" in capsys.readouterr().err
    assert main(["chat", "builtin:tiny-llama", "--rope-scaling", "dynamic"]) == 2
    assert "expected TYPE:FACTOR" in capsys.readouterr().err
    assert main(["chat", "builtin:tiny-llama", "--rope-scaling", "linear:1"]) == 2
    assert "greater than 1" in capsys.readouterr().err


def test_commands_without_a_run_config_refuse_overrides(tmp_path, capsys):
    for argv in (["info", "builtin:tiny-llama"], ["chat", "builtin:tiny-llama"],
                 ["predict", "builtin:tiny-llama", "--input", "x", "--output", "y"]):
        with pytest.raises(SystemExit) as exc:
            main(argv + ["totally.bogus.key=1"])
        assert exc.value.code == 2
        assert "takes no config overrides (got totally.bogus.key=1)" in capsys.readouterr().err
    # eval of a plain model has no run config to apply them to
    assert main(["eval", "builtin:tiny-llama", "--data-file", str(TOY),
                 "eval.max_samples=1"]) == 2
    assert "not a run, so there is no run config" in capsys.readouterr().err


def _said(capsys) -> str:
    got = capsys.readouterr()
    return " ".join((got.out + got.err).split())  # rich wraps long lines


def test_model_flag_means_a_config_file_and_the_old_use_is_deprecated(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "hi"}, {"prompt": "bye"}])
    out = tmp_path / "a.jsonl"
    assert main(["predict", "--model", "builtin:tiny-llama", "--input", str(inputs),
                 "--output", str(out), "--max-new-tokens", "2", "--no-progress"]) == 0
    assert "--model DIR is deprecated for lmforge predict" in _said(capsys)
    assert len(out.read_text().splitlines()) == 2
    assert main(["eval", "--model", "builtin:tiny-llama", "--data-file", str(TOY),
                 "--max-samples", "1", "--max-new-tokens", "2", "--no-progress",
                 "--output-dir", str(tmp_path / "ev")]) == 0
    assert "--model DIR is deprecated for lmforge eval" in _said(capsys)
    # as in train and validate, --model with a YAML is a model config (merged with --data)
    assert main(["eval", "--model", str(tmp_path / "m.yaml")]) == 2
    assert "m.yaml: not found" in _said(capsys)


def test_predict_fallback_answers_are_counted_in_the_report(tmp_path, capsys):
    inputs = write_jsonl(tmp_path / "q.jsonl", [{"prompt": f"question {i}"} for i in range(3)])
    out = tmp_path / "a.jsonl"
    assert main(["predict", "builtin:tiny-llama", "--input", str(inputs), "--output", str(out),
                 "--max-new-tokens", "3", "--answer-pattern", r"ANSWER=(\d{9})", "--retries",
                 "1", "--fallback", "0", "--no-progress"]) == 0
    report = _said(capsys)
    assert "unparseable answers: 3 of 3" in report
    assert "0 recovered by a retry (--retries 1)" in report
    assert "3 set to the fallback '0'" in report
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["answer"] == "0" and r["fallback"] and r["attempts"] == 2 for r in recs)


def test_info_tree_and_totals_include_the_adapter(tmp_path, tiny_model_dir, capsys):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                      modules_to_save=["lm_head"]))
    trainable, total = model.get_nb_trainable_parameters()
    model.save_pretrained(tmp_path / "ad")
    assert main(["info", str(tiny_model_dir), "--adapter", str(tmp_path / "ad"), "--tree",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["parameters"], info["trainable_parameters"]) == (total, trainable)
    assert info["base_parameters"] + info["adapter_parameters"] == total
    tree = info["tree"]
    assert (tree["parameters"], tree["trainable"]) == (total, trainable)
    body = {c["name"]: c for c in tree["children"]}
    layers = {c["name"]: c for c in body["model"]["children"]}["layers"]["children"]
    assert [c["name"] for c in layers] == ["0-1"] and layers[0]["type"].startswith("2 × ")
    attn = {c["name"]: c for c in layers[0]["children"]}["self_attn"]
    lora = {c["name"]: c["trainable"] for c in attn["children"]}
    assert lora["q_proj"] > 0 and lora["v_proj"] > 0 and lora["k_proj"] == 0
    assert body["lm_head"]["trainable"] == body["lm_head"]["parameters"] // 2  # the copy trains
    # without an adapter every parameter trains; the text tree names the modules
    assert main(["info", "builtin:tiny-llama", "--tree", "--depth", "2"]) == 0
    text = capsys.readouterr().out
    assert "embed_tokens (Embedding)" in text and "all trainable" in text
