"""Test harness: offline by construction, tiny models built locally, loopback-only network.

The HF offline variables are set before anything imports transformers/datasets/huggingface_hub.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                  TOKENIZERS_PARALLELISM="false", WANDB_MODE="offline", DO_NOT_TRACK="1",
                  HF_HUB_DISABLE_TELEMETRY="1", MPLBACKEND="Agg")
os.environ.setdefault("LMFORGE_CACHE", str(Path(tempfile.gettempdir()) / "lmforge-test-cache"))

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
_LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")
_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not host.startswith(_LOOPBACK) and self.family in (
            socket.AF_INET, socket.AF_INET6):
        raise OSError(f"tests are offline: connection to {host!r} blocked by tests/conftest.py")
    return _real_connect(self, address)


socket.socket.connect = _guarded_connect


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The built-in tiny Llama (same code as `lmforge tiny`), built once per cache."""
    from lmforge.utils.builtin import resolve

    return Path(resolve("builtin:tiny-llama"))


@pytest.fixture(scope="session")
def tiny_qwen_dir() -> Path:
    from lmforge.utils.builtin import resolve

    return Path(resolve("builtin:tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def run_cli(*args: str, cwd: Path | str | None = None, timeout: int = 600,
            env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run `python -m lmforge ARGS` in a subprocess (the e2e tier)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "lmforge", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          input=stdin)


@pytest.fixture
def cli():
    return run_cli


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path
