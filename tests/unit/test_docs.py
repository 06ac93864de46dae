"""The documentation stays true: the configuration reference is the generator's current output,
every config key and every CLI command appears in docs/, links resolve, the data-format examples
parse with lmforge's own converters, and the troubleshooting messages are what lmforge prints."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = REPO / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md")))


def test_configuration_reference_is_current():
    from lmforge.commands.config_schema import render

    current = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert render("markdown") == current, (
        "docs/configuration.md is stale: run lmforge config-schema --out docs/configuration.md")


def test_config_schema_check_flag(tmp_path, capsys):
    from lmforge.cli import main

    out = tmp_path / "ref.md"
    assert main(["config-schema", "--out", str(out), "--check"]) == 1
    assert main(["config-schema", "--out", str(out)]) == 0
    assert main(["config-schema", "--out", str(out), "--check"]) == 0
    assert main(["config-schema", "--format", "json", "--out", str(tmp_path / "s.json")]) == 0
    schema = json.loads((tmp_path / "s.json").read_text())
    assert "learning_rate" in schema["properties"]["train"]["properties"]


def _schema_keys(schema: dict) -> set[str]:
    """Dotted keys from the JSON Schema (independent of the Markdown generator's own walk)."""
    defs = schema.get("$defs", {})
    keys: set[str] = set()

    def node(s: dict, path: str, item: bool = False):
        if "$ref" in s:
            target = defs[s["$ref"].rsplit("/", 1)[1]]
            if "properties" in target:
                walk(target, f"{path}[]" if item else path)
            return
        for sub in s.get("anyOf", []):
            node(sub, path, item)
        if s.get("type") == "array" and "items" in s:
            node(s["items"], path, True)

    def walk(s: dict, prefix: str):
        for name, sub in s.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            keys.add(path)
            node(sub, path)

    walk(schema, "")
    return keys


def test_every_config_key_is_documented():
    from lmforge.config.distill import DistillFile
    from lmforge.config.run import RunConfig

    text = docs_text()
    keys = _schema_keys(RunConfig.model_json_schema())
    keys |= {k for k in _schema_keys(DistillFile.model_json_schema())}
    assert len(keys) > 150
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"config keys missing from docs/: {missing}"


def test_every_command_is_documented():
    from lmforge.cli import _command_modules

    text = docs_text()
    names = list(_command_modules())
    assert {"train", "eval", "config-schema"} <= set(names)
    missing = [n for n in names if f"`lmforge {n}" not in text]
    assert not missing, f"commands missing from docs/: {missing}"


def test_links_resolve_and_index_lists_every_page():
    pages = sorted(DOCS.glob("*.md")) + [REPO / "examples" / "README.md"]
    for page in pages:
        for target, _ in LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in DOCS.glob("*.md") if p.name != "README.md"
                and f"({p.name})" not in index]
    assert not unlinked, f"docs/README.md does not link: {unlinked}"


def _format_blocks() -> list[tuple[str, list[str]]]:
    text = (DOCS / "data.md").read_text(encoding="utf-8")
    found = re.findall(r"<!-- format: (\w+) -->\s*```jsonl\n(.*?)```", text, re.S)
    return [(fmt, [line for line in body.splitlines() if line.strip()]) for fmt, body in found]


def test_data_format_examples_parse():
    import lmforge.data.preference  # noqa: F401 - registers the preference/kto converters
    import lmforge.data.prompts  # noqa: F401 - registers the prompt converter
    from lmforge.data import formats

    blocks = _format_blocks()
    assert {f for f, _ in blocks} == {"alpaca", "prompt_response", "prompt_completion",
                                      "messages", "text", "preference", "kto", "prompt"}
    for fmt, lines in blocks:
        convert = formats.converter(fmt, {})
        for i, line in enumerate(lines):
            example = convert(json.loads(line), {}, f"docs/data.md:{fmt}:{i}")
            assert example is not None


# ---- troubleshooting: the documented messages are reproduced -------------------------------

RUN_YAML = """stage: sft
model: {path: builtin:tiny-llama}
adapter: {type: full}
data: {train: train.jsonl, format: alpaca, max_length: 128}
train: {output_dir: runs/t, max_steps: 2}
"""


@pytest.fixture
def trouble_dir(tmp_path, monkeypatch, tiny_model_dir):
    import shutil

    (tmp_path / "run.yaml").write_text(RUN_YAML)
    shutil.copy(REPO / "examples/data/toy_train.jsonl", tmp_path / "train.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"instruction": "hi", "input": ""}\n')
    (tmp_path / "msg.jsonl").write_text(json.dumps({"messages": [
        {"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}) + "\n")
    (tmp_path / "data.yaml").write_text("data:\n  train: train.jsonl\n  max_length: 128\n")
    (tmp_path / "model.yaml").write_text("model: {path: builtin:tiny-llama}\n"
                                         "data:\n  max_length: 256\n")
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((base / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _shell_blocks() -> list[tuple[list[str], list[str]]]:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    out = []
    for body in re.findall(r"```text\n(.*?)```", text, re.S):
        lines = body.rstrip("\n").splitlines()
        if lines and lines[0].startswith("$ lmforge "):
            out.append((shlex.split(lines[0][len("$ lmforge "):]), lines[1:]))
    return out


def test_troubleshooting_commands_print_what_the_docs_say(trouble_dir, capsys):
    from lmforge.cli import main

    blocks = _shell_blocks()
    assert len(blocks) >= 8
    for argv, expected in blocks:
        code = main(argv)
        err = capsys.readouterr().err
        got = [line for line in err.splitlines() if line.startswith(("error:", "hint:", "  "))]
        assert code != 0, argv
        assert got == expected, f"lmforge {' '.join(argv)}:\n{err}"


def test_troubleshooting_messages_built_in_and_oom():
    import torch

    from lmforge.config import load
    from lmforge.errors import DependencyError
    from lmforge.training.resource_faults import translate
    from lmforge.utils.builtin import _missing

    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    missing = _missing("smollm2-135m-instruct")
    assert f"error: {missing.message}\nhint: {missing.hint}" in text
    cfg = load(None, str(REPO / "examples/extraction/data.yaml"),
               str(REPO / "examples/extraction/model.yaml"))
    oom = translate(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), cfg)
    assert f"error: {oom.message}\nhint: {oom.hint}" in text
    dep = DependencyError("fastapi", "serve", "lmforge serve")
    assert f"`error: {dep.message}`" in text.replace("\n  ", " ")
