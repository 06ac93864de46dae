"""The virtual environments the jobs run in: LLaMA-Factory's (``make bench-peers`` creates
``.venv-llamafactory`` from bench/peers/llamafactory.txt) and lmforge's own without extras
(``.venv-bench``, ``lmforge_python()``: lmforge, TRL and the HF Trainer as a default install).

``llamafactory_python()`` finds the venv's interpreter and checks, once per benchmark run, that
it imports LLaMA-Factory's trainer at the pinned version; otherwise it says why the LLaMA-Factory
jobs are skipped (the quick mode and the tests run without the peer venv).
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LF_VERSION = "0.9.5"
LF_VENV = REPO / ".venv-llamafactory"
ENV_OVERRIDE = "LMFORGE_BENCH_LF_PYTHON"
_PROBE = ("import json, torch, transformers, peft, trl\n"
          "from llamafactory.extras.env import VERSION\n"
          "from llamafactory.train.tuner import run_exp\n"
          "print(json.dumps({'llamafactory': VERSION, 'torch': torch.__version__, "
          "'transformers': transformers.__version__, 'peft': peft.__version__, "
          "'trl': trl.__version__}))")


def _python() -> Path:
    override = os.environ.get(ENV_OVERRIDE)
    return Path(override) if override else LF_VENV / "bin" / "python"


@lru_cache(maxsize=None)
def llamafactory_python() -> tuple[str | None, dict | str]:
    """(interpreter, its library versions), or (None, why LLaMA-Factory is skipped)."""
    python = _python()
    fix = "create it with `make bench-peers`"
    if not python.is_file():
        where = f"{ENV_OVERRIDE}={python}" if os.environ.get(ENV_OVERRIDE) else \
            f"no peer venv at {python.parent.parent}"
        return None, f"LLaMA-Factory not run: {where} ({fix})"
    try:
        proc = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True,
                              timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"LLaMA-Factory not run: {python} failed to start ({exc}); {fix}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"LLaMA-Factory not run: {python} cannot import it ({last}); {fix}"
    versions = json.loads(proc.stdout.strip().splitlines()[-1])
    if versions["llamafactory"] != LF_VERSION:
        return None, (f"LLaMA-Factory not run: {python} has llamafactory "
                      f"{versions['llamafactory']}, the benchmark pins {LF_VERSION} ({fix})")
    return str(python), versions


# lmforge's own jobs (and TRL's, the HF Trainer's, the matmul probe's) run in .venv-bench: lmforge
# as `pip install lmforge` installs it, without the extras the dev venv carries. transformers and
# peft import bitsandbytes and torchao at start-up whenever they are installed (+100 MiB RSS at
# import, ~60 MiB at the tiny SFT job's peak; no use in a run that does not quantize), and
# LLaMA-Factory's venv holds neither: the same footing.
BENCH_VENV = REPO / ".venv-bench"
BENCH_OVERRIDE = "LMFORGE_BENCH_PYTHON"
OPTIONAL = ("bitsandbytes", "torchao", "deepspeed")  # imported by the libraries when present
_CORE_PROBE = ("import importlib.util, json, torch, transformers, peft, trl, lmforge\n"
               f"opt = {OPTIONAL!r}\n"
               "print(json.dumps({'torch': torch.__version__, "
               "'transformers': transformers.__version__, 'peft': peft.__version__, "
               "'trl': trl.__version__, 'lmforge_src': lmforge.__file__, "
               "'optional_installed': [m for m in opt if importlib.util.find_spec(m)]}))")


@lru_cache(maxsize=None)
def lmforge_python() -> tuple[str, dict]:
    """(interpreter for lmforge's and TRL's jobs, what it holds): .venv-bench when it imports
    this checkout's lmforge, else the running interpreter, with the reason."""
    import sys

    override = os.environ.get(BENCH_OVERRIDE)
    python = Path(override) if override else BENCH_VENV / "bin" / "python"
    fallback = {"venv": sys.prefix, "optional_installed": [m for m in OPTIONAL if _spec(m)]}
    if not python.is_file():
        return sys.executable, dict(fallback, note=f"no {python.parent.parent} (`make bench` "
                                    "creates it): lmforge ran in this venv")
    proc = subprocess.run([str(python), "-c", _CORE_PROBE], capture_output=True, text=True,
                          timeout=300, cwd="/")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return sys.executable, dict(fallback, note=f"{python} cannot import lmforge ({last}): "
                                    "lmforge ran in this venv")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(found["lmforge_src"]).resolve().parents[1] != REPO / "src":
        return sys.executable, dict(fallback, note=f"{python} imports another lmforge "
                                    f"({found['lmforge_src']}): lmforge ran in this venv")
    return str(python), dict(found, venv=str(python.parent.parent))


def _spec(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
