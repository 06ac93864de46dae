"""Test harness: offline by construction, tiny models built locally, loopback-only network,
nothing left behind in the system temp directory.

The HF offline variables are set before anything imports transformers/datasets/huggingface_hub.
For the session, TMPDIR (and ``tempfile.tempdir``) point to a fresh directory under pytest's
basetemp, which subprocesses inherit; at the end it must be empty (but for LIBRARY_CACHES), and no
entry with one of lmforge's prefixes may have appeared in the real temp directory. The tiny-model
cache (``$LMFORGE_CACHE``, default <tmp>/lmforge-test-cache) stays on purpose: it is built once
and reused by every later session.
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
SYSTEM_TMP = Path(tempfile.gettempdir())
os.environ.setdefault("LMFORGE_CACHE", str(SYSTEM_TMP / "lmforge-test-cache"))
# names lmforge and its tests have created in the temp directory (what a leak looks like)
TEMP_PREFIXES = ("lmforge-", "fuzz-", "cfgfuzz-", "ovfuzz-", "build-")
# caches libraries keep in $TMPDIR on purpose: torch's compile cache (made on importing deepspeed),
# jieba's dictionary cache (Chinese ROUGE), and multiprocessing's own directory of a forkserver
# that lives until the interpreter exits (the kill/resume tests share one; Python removes it),
# gradio's upload/cache directory (web UI tests)
LIBRARY_CACHES = ("torchinductor_", "jieba.cache", "pymp-", "gradio")

import pytest  # noqa: E402

# transformers imports torchao whenever it is installed (its quantizer registry), and torchao's
# import logs notices (kernel libraries for other CPUs/GPUs, enum registration) on the first
# import in a process: the CLI silences them (utils/quiet.py); tests calling main() in-process
# and comparing its stderr must not depend on which test imported torchao first
import logging  # noqa: E402

for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)

# property tests draw the same examples on every default run (a green CI stays green for the
# same code, and a failure reproduces); LMFORGE_HYPOTHESIS=explore draws new ones each run
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("lmforge-default", derandomize=True, database=None)
_hypothesis_settings.register_profile("explore")
_hypothesis_settings.load_profile("explore" if os.environ.get("LMFORGE_HYPOTHESIS") == "explore"
                                  else "lmforge-default")

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


def _ours(names: set[str]) -> set[str]:
    keep = Path(os.environ["LMFORGE_CACHE"]).name
    return {n for n in names if n.startswith(TEMP_PREFIXES) and n != keep}


def _leftovers(tmp: Path, before: set[str]) -> list[str]:
    """What the session left: everything in its own TMPDIR, plus new prefixed names in the real
    temp directory (written by code that bypassed TMPDIR); other processes' files are ignored."""
    own = sorted(str(p) for p in tmp.iterdir() if not p.name.startswith(LIBRARY_CACHES))
    try:
        now = {p.name for p in SYSTEM_TMP.iterdir()}
    except OSError:
        now = set()
    return own + sorted(str(SYSTEM_TMP / n) for n in _ours(now - before))


@pytest.fixture(scope="session", autouse=True)
def session_tmpdir(tmp_path_factory):
    """A private TMPDIR for the whole session; it fails the session when files are left in it."""
    before = {p.name for p in SYSTEM_TMP.iterdir()}
    tmp = tmp_path_factory.mktemp("tmpdir", numbered=False)
    # torchrun started by a test keeps its per-rank log directories here, not in TMPDIR
    # (torchelastic_*); `lmforge train --nproc` passes its own --log-dir and removes it
    torchrun_logs = tmp_path_factory.mktemp("torchrun-logs", numbered=False)
    saved = {k: os.environ.get(k) for k in ("TMPDIR", "TEMP", "TMP", "PET_LOG_DIR")}
    os.environ.update(TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp),
                      PET_LOG_DIR=str(torchrun_logs))
    saved_tempdir, tempfile.tempdir = tempfile.tempdir, str(tmp)
    try:
        yield tmp
    finally:
        tempfile.tempdir = saved_tempdir
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    left = _leftovers(tmp, before)
    if left:
        pytest.fail(f"the tests left {len(left)} entries in the temp directory (use tmp_path, or "
                    "make the code clean up after itself): " + ", ".join(left[:20]),
                    pytrace=False)


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
