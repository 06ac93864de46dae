"""``builtin:<name>`` model paths: built (tiny models) or converted once into a cache, reused after.

The cache lives under ``$LMFORGE_CACHE`` (default ``~/.cache/lmforge``). Building is guarded by a
lock file so parallel test workers or ranks build once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from lmforge.errors import ModelError

PREFIX = "builtin:"


def cache_root() -> Path:
    return Path(os.environ.get("LMFORGE_CACHE", Path.home() / ".cache" / "lmforge"))


def _tiny(arch: str) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from lmforge.utils.tiny import build_tiny

        build_tiny(out, arch=arch)

    return build


# name -> (description, builder(out_dir), installed() -> bool)
BUILTINS: dict[str, tuple[str, Callable[[Path], None], Callable[[], bool]]] = {
    "tiny-llama": ("tiny random Llama (64 hidden, 2 layers) + ChatML BPE tokenizer, built offline",
                   _tiny("llama"), lambda: True),
    "tiny-qwen2": ("tiny random Qwen2 (64 hidden, 2 layers) + ChatML BPE tokenizer, built offline",
                   _tiny("qwen2"), lambda: True),
}


def is_builtin(path: str) -> bool:
    return path.startswith(PREFIX)


def resolve(path: str) -> str:
    """Map ``builtin:<name>`` to a ready model directory (building it once); other paths pass."""
    if not is_builtin(path):
        return path
    name = path[len(PREFIX):]
    if name not in BUILTINS:
        import difflib

        close = difflib.get_close_matches(name, list(BUILTINS), n=1)
        hint = f"did you mean 'builtin:{close[0]}'?" if close else "see `lmforge models`"
        raise ModelError(f"model.path: unknown built-in model '{name}'", hint)
    _, build, _installed = BUILTINS[name]
    out = cache_root() / "models" / name
    if (out / "config.json").is_file():
        return str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from lmforge.utils.locks import file_lock

    with file_lock(out.with_suffix(".lock")):
        if not (out / "config.json").is_file():
            tmp = out.with_name(out.name + f".tmp{os.getpid()}")
            build(tmp)
            os.replace(tmp, out)
    return str(out)
