"""The web UI's Train form: generated from the RunConfig schema with the field descriptions as
help, turned back into a minimal run config, and checked with the same text as `lmforge
validate`. Also the parsing of the training subprocess's log lines."""

from __future__ import annotations

import yaml

from lmforge.config import RunConfig, validate
from lmforge.webui import form
from lmforge.webui.training import parse_line


def _schema_leaves(cls, prefix=""):
    from lmforge.config.methods import METHOD_BLOCKS

    out = {}
    for name, info in cls.model_fields.items():
        if cls is RunConfig and name in METHOD_BLOCKS:
            out.update(_schema_leaves(METHOD_BLOCKS[name], f"{prefix}{name}."))
            continue
        sub = form._section_class(info.annotation)
        if sub is not None and type(None) not in form._union_args(info.annotation):
            out.update(_schema_leaves(sub, f"{prefix}{name}."))
        else:
            out[prefix + name] = info.description
    return out


def test_every_schema_field_is_in_the_form_with_its_description():
    specs = form.fields()
    want = _schema_leaves(RunConfig)
    assert {s.path: s.description for s in specs} == want
    by = {s.path: s for s in specs}
    assert by["model.path"].required and by["stage"].kind == "choice"
    assert "sft" in by["stage"].choices and by["train.use_cpu"].kind == "bool"
    assert by["train.learning_rate"].kind == "text"
    assert list(form.groups(specs))[:6] == ["run", "model", "adapter", "data", "train", "eval"]


def _defaults():
    return {s.path: s.default for s in form.fields()}


def test_unchanged_fields_are_left_out_and_values_are_yaml():
    values = _defaults() | {"model.path": "builtin:tiny-llama", "train.learning_rate": "1e-4",
                            "adapter.target_modules": "[q_proj, v_proj]",
                            "train.use_cpu": True, "adapter.type": "full",
                            "data.system": "true", "eval.generation.max_new_tokens": "16"}
    tree = form.build_tree(values)
    assert tree == {"model": {"path": "builtin:tiny-llama"},
                    "adapter": {"type": "full", "target_modules": ["q_proj", "v_proj"]},
                    "data": {"system": "true"},  # a plain string field is not YAML-parsed
                    "train": {"learning_rate": 1e-4, "use_cpu": True},
                    "eval": {"generation": {"max_new_tokens": 16}}}
    cfg = validate(yaml.safe_load(form.to_yaml(tree)))
    assert cfg.train.learning_rate == 1e-4 and cfg.adapter.target_modules == ["q_proj", "v_proj"]
    assert form.build_tree(_defaults() | {"model.path": "m"}) == {"model": {"path": "m"}}


def test_check_reports_exactly_what_lmforge_validate_prints(tmp_path, capsys):
    from lmforge.cli import main

    # a method block of another stage is the validator's error too
    cfg, message = form.check(form.build_tree(_defaults() | {"model.path": "m", "dpo.beta": "0.2"}))
    assert cfg is None and "block 'dpo:' is given but stage is 'sft'" in message
    values = _defaults() | {"model.path": "builtin:tiny-llama", "train.learning_rate": "abc"}
    tree = form.build_tree(values)
    cfg, message = form.check(tree)
    # LoRA (the form's default) on the random tiny base: validate's warning comes first, as in the CLI
    assert cfg is None and message.startswith("warning: adapter.type lora")
    assert "\nerror: invalid configuration" in message
    assert "train.learning_rate" in message and "\nhint: " in message
    path = tmp_path / "run.yaml"
    path.write_text(form.to_yaml(tree))
    capsys.readouterr()
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == message.strip()


def test_check_runs_the_file_checks_of_lmforge_validate(tmp_path, capsys):
    from lmforge.cli import main

    tree = form.build_tree(_defaults() | {"model.path": "builtin:tiny-llama",
                                          "data.train": str(tmp_path / "nope.jsonl")})
    cfg, message = form.check(tree)
    assert cfg is None and "nope.jsonl' not found" in message
    path = tmp_path / "run.yaml"
    path.write_text(form.to_yaml(tree))
    capsys.readouterr()
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err.strip() == message.strip()
    data = tmp_path / "d.jsonl"
    data.write_text('{"instruction": "a", "output": "b"}\n')
    ok, text = form.check(form.build_tree(_defaults() | {"model.path": "builtin:tiny-llama",
                                                         "adapter.type": "full",
                                                         "data.train": str(data)}))
    assert ok is not None and text == "ok"


def test_training_log_lines_give_steps_and_losses():
    assert parse_line("[10:00:01] INFO     step 10: loss=2.5 grad_norm=0.9 learning_rate=0.001"
                      ) == (10, {"loss": 2.5})
    assert parse_line("INFO step 20: eval_loss=1.25e+00 eval_runtime=0.5") == (
        20, {"eval_loss": 1.25})
    assert parse_line("step 3: train_loss=1.0 train_runtime=2.0") is None
    assert parse_line("loading the model") is None
