"""API keys and tokens never reach logs, the run directory's config, env.json or error output; the
servers bind loopback by default and warn when exposed without a key."""

from __future__ import annotations

import json
import logging

import pytest

HF = "hf_" + "Ab3" * 12
OPENAI = "sk-proj-" + "x9Y" * 10
GITHUB = "ghp_" + "Q7w" * 12


@pytest.mark.parametrize("text, secret", [
    (f"token {HF} loaded", HF),
    (f"calling with {OPENAI}", OPENAI),
    (f"clone https://x:{GITHUB}@github.com/a/b", GITHUB),
    ("Authorization: Bearer abcdefghijklmnop123456", "abcdefghijklmnop123456"),
    ("api_key=s3cr3t-value hub_token: 'tok-12345'", "s3cr3t-value"),
    ("api_key=s3cr3t-value hub_token: 'tok-12345'", "tok-12345"),
    ("https://user:hunter22@example.com/path", "hunter22"),
    ("AKIAABCDEFGHIJKLMNOP is an aws key id", "AKIAABCDEFGHIJKLMNOP"),
])
def test_redact_masks_token_shapes_and_credentials(text, secret):
    from lmforge.utils.secrets import MASK, redact

    out = redact(text)
    assert secret not in out and MASK in out


@pytest.mark.parametrize("text", [
    "pad_token=<|pad|> eos_token: <|im_end|>", "max_new_tokens=64 tokens/s=1234.5",
    "step 10: loss=1.234 grad_norm=0.5", "tokenizer: builtin:tiny-llama",
    "api_key_env: OPENAI_API_KEY", "reading /data/sk-notes.txt"])
def test_redact_leaves_ordinary_text_alone(text):
    from lmforge.utils.secrets import redact

    assert redact(text) == text


def test_redact_tree_and_argv():
    from lmforge.utils.secrets import MASK, redact_argv, redact_tree

    tree = {"train": {"extra": {"hub_token": "anything", "push_to_hub": True}},
            "model": {"new_special_tokens": ["<a>"], "path": "m"},
            "distill": {"api_key_env": "OPENAI_API_KEY", "headers": {"Authorization": "x y"}},
            "notes": [f"uses {HF}"], "api_key": None}
    out = redact_tree(tree)
    assert out["train"]["extra"] == {"hub_token": MASK, "push_to_hub": True}
    assert out["model"] == tree["model"] and out["api_key"] is None
    assert out["distill"] == {"api_key_env": "OPENAI_API_KEY", "headers": {"Authorization": MASK}}
    assert HF not in json.dumps(out)
    argv = ["serve", "--api-key", "k-123456", "--token=abc", "train.extra.hub_token=zzz",
            "--port", "8000", OPENAI]
    assert redact_argv(argv) == ["serve", "--api-key", MASK, f"--token={MASK}",
                                 f"train.extra.hub_token={MASK}", "--port", "8000", MASK]


def test_run_files_hold_no_secrets(tmp_path, monkeypatch):
    from lmforge.config import validate
    from lmforge.utils.rundir import write_run_files

    cfg = validate({"stage": "sft", "model": {"path": "m"}, "data": {"train": "t.jsonl"},
                    "train": {"output_dir": str(tmp_path), "extra": {"hub_token": HF}}})
    monkeypatch.setattr("sys.argv", ["lmforge", "train", "run.yaml", f"train.extra.hub_token={HF}",
                                     "--api-key", OPENAI])
    out = write_run_files(cfg)
    for name in ("lmforge_config.yaml", "env.json"):
        text = (out / name).read_text()
        assert HF not in text and OPENAI not in text, name
    assert "hub_token: '***'" in (out / "lmforge_config.yaml").read_text()
    assert "train" in json.loads((out / "env.json").read_text())["argv"]


def test_log_lines_and_cli_errors_are_redacted(capsys, monkeypatch):
    from lmforge import cli
    from lmforge.errors import ConfigError
    from lmforge.utils import logs

    logs.setup()
    logging.getLogger("lmforge.test").warning("connecting with %s", HF)
    assert HF not in capsys.readouterr().out

    def boom(args):
        raise ConfigError(f"teacher rejected key {OPENAI}")

    monkeypatch.setattr(cli, "build_parser", _parser_running(boom))
    assert cli.main(["x"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and OPENAI not in err


def _parser_running(fn):
    import argparse

    def build(commands=None):
        parser = argparse.ArgumentParser()
        parser.add_argument("command")
        parser.set_defaults(_run=fn)
        return parser
    return build


def test_servers_bind_loopback_by_default_and_warn_when_exposed():
    from lmforge.cli import build_parser
    from lmforge.serve.server import binding_warning as serve_warning
    from lmforge.webui.app import binding_warning as ui_warning

    parser = build_parser()
    assert parser.parse_args(["serve", "some/model"]).host == "127.0.0.1"
    assert parser.parse_args(["webui"]).host == "127.0.0.1"
    for host in ("127.0.0.1", "localhost", "::1"):
        assert serve_warning(host, None) is None and ui_warning(host) is None
    assert "without an API key" in serve_warning("0.0.0.0", None)
    assert serve_warning("0.0.0.0", "a-key") is None
    assert "0.0.0.0" in ui_warning("0.0.0.0")
