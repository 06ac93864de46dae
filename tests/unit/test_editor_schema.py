"""``lmforge config-schema --format json``: a JSON Schema editors accept (yaml-language-server's
``$schema`` comment): the whole run object with ``$schema``/``$id``/``title``, references inlined,
unknown keys refused; every example config validates against it, and it refuses what lmforge
refuses (unknown keys, wrong types, a missing model)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import REPO

jsonschema = pytest.importorskip("jsonschema")  # in the dev extra


def _validator(kind: str):
    from lmforge.config.editor_schema import schema

    s = schema(kind)
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


def _errors(kind: str, tree: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.path))}: {e.message}"
            for e in _validator(kind).iter_errors(tree)]


def _example_configs() -> list:
    """(name, kind, tree): whole run configs, distill files, and each directory's data.yaml +
    model.yaml merged as `lmforge train --data --model` merges them (and each part alone)."""
    from lmforge.config.loader import compose

    out = []
    for f in sorted((REPO / "examples").rglob("*.yaml")):
        tree = yaml.safe_load(f.read_text(encoding="utf-8"))
        name = str(f.relative_to(REPO))
        if not isinstance(tree, dict) or all("." in k for k in tree):
            continue  # a sweep space (dotted keys), not a config
        if "distill" in tree:
            out.append((name, "distill", tree))
        elif "model" in tree and "data" in tree:
            out.append((name, "run", tree))
        else:
            out.append((name, "part", tree))
    for data in sorted((REPO / "examples").rglob("data.yaml")):
        for model in sorted(data.parent.glob("*.yaml")):
            tree = yaml.safe_load(model.read_text(encoding="utf-8"))
            if model != data and isinstance(tree, dict) and "model" in tree and "data" not in tree:
                merged = compose(data=str(data), model=str(model))
                out.append((f"{data.relative_to(REPO)} + {model.name}", "run", merged))
    return out


def test_schema_is_a_self_contained_editor_schema():
    from lmforge.config.editor_schema import schema

    s = schema("run")
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["$id"].startswith("urn:lmforge:run-config:") and s["title"] == "lmforge run config"
    assert s["type"] == "object" and s["required"] == ["model"]
    assert "$ref" not in json.dumps(s) and "$defs" not in s  # every reference inlined
    train = s["properties"]["train"]
    assert train["additionalProperties"] is False
    assert train["properties"]["learning_rate"]["type"] == "number"
    assert train["properties"]["learning_rate"]["description"]  # hover text in the editor
    assert s["properties"]["model"]["description"] == "base model"  # the field's own text wins
    assert "required" not in schema("part")
    assert schema("distill")["required"] == ["distill"]


def test_every_example_config_validates():
    configs = _example_configs()
    kinds = {k for _, k, _ in configs}
    assert len(configs) >= 20 and kinds == {"run", "part", "distill"}
    bad = {name: errs for name, kind, tree in configs if (errs := _errors(kind, tree))}
    assert not bad, bad


def test_schema_refuses_what_lmforge_refuses():
    good = {"model": {"path": "builtin:tiny-llama"}, "train": {"learning_rate": 1e-4}}
    assert _errors("run", good) == []
    typo = {"model": {"path": "x"}, "train": {"learnin_rate": 1e-4}}
    assert any("learnin_rate" in e for e in _errors("run", typo))
    assert any("learning_rate" in e for e in _errors(
        "run", {"model": {"path": "x"}, "train": {"learning_rate": "fast"}}))
    assert any("stage" in e for e in _errors("run", {"model": {"path": "x"}, "stage": "dop"}))
    assert any("'model' is a required property" in e for e in _errors("run", {"stage": "sft"}))
    assert _errors("part", {"data": {"max_length": 128}}) == []
    assert any("extra_block" in e for e in _errors("part", {"extra_block": 1}))


def test_cli_writes_the_schema(tmp_path, capsys):
    from lmforge.cli import main

    assert main(["config-schema", "--format", "json", "--out", str(tmp_path / "s.json")]) == 0
    written = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert written["title"] == "lmforge run config"
    capsys.readouterr()
    assert main(["config-schema", "--format", "json", "--kind", "distill"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "lmforge distill file"
