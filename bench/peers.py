"""The peers that run in their own virtual environments: LLaMA-Factory (``make bench-peers``
creates ``.venv-llamafactory`` from bench/peers/llamafactory.txt).

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
