"""Which interpreter the benchmark's lmforge, TRL and HF Trainer jobs run in (bench/peers.py):
.venv-bench (lmforge as a default install, no extras) when it imports this checkout, else the
running interpreter with the reason, which the report prints next to the tables."""

from __future__ import annotations

import sys

import pytest

from bench import peers
from bench.runner import venv_line


@pytest.fixture(autouse=True)
def _fresh_probe():
    peers.lmforge_python.cache_clear()
    yield
    peers.lmforge_python.cache_clear()


def test_a_missing_bench_venv_runs_lmforge_here_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(peers.BENCH_OVERRIDE, str(tmp_path / "none" / "bin" / "python"))
    python, info = peers.lmforge_python()
    assert python == sys.executable and info["venv"] == sys.prefix
    assert "make bench" in info["note"] and str(tmp_path / "none") in info["note"]
    assert set(info["optional_installed"]) <= set(peers.OPTIONAL)
    line = venv_line({"lmforge_venv": info})
    assert line.startswith(f"lmforge, TRL, HF Trainer ran in {sys.prefix}")
    assert "make bench" in line


def test_a_venv_that_cannot_import_lmforge_is_not_used(tmp_path, monkeypatch):
    broken = tmp_path / "bin" / "python"
    broken.parent.mkdir(parents=True)
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: lmforge' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv(peers.BENCH_OVERRIDE, str(broken))
    python, info = peers.lmforge_python()
    assert python == sys.executable
    assert "cannot import lmforge (ModuleNotFoundError: lmforge)" in info["note"]


def test_a_venv_importing_this_checkout_is_used_with_what_it_holds(monkeypatch):
    monkeypatch.setenv(peers.BENCH_OVERRIDE, sys.executable)
    python, info = peers.lmforge_python()
    assert python == sys.executable and "note" not in info
    import torch

    assert info["torch"] == torch.__version__
    installed = [m for m in peers.OPTIONAL if peers._spec(m)]
    assert info["optional_installed"] == installed
    assert f"installed: {', '.join(installed) or 'none'})" in venv_line({"lmforge_venv": info})
