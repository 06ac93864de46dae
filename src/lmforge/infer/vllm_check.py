"""Is vLLM usable here? One check for every vLLM path (serve/predict/eval ``--backend vllm``,
``grpo.use_vllm``), run before any model loads, so that a machine without vLLM or without a CUDA
GPU gets one clear error naming the extra instead of an import error halfway through.

Only ``lmforge.errors`` and the leaf ``lmforge.utils.gpu`` are imported: the config layer calls this while validating.
"""

from __future__ import annotations

import importlib.util

from lmforge.errors import ConfigError

HINT = ("pip install 'lmforge[vllm]' on a Linux machine with a CUDA GPU; without one, use the "
        "default transformers backend")


def vllm_problem() -> str | None:
    """Why vLLM cannot run here (None: it can): not installed, or no CUDA GPU."""
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (extra 'vllm')"
    from lmforge.utils.gpu import gpu_present

    if not gpu_present():
        return "vLLM needs a CUDA GPU and none is visible to torch"
    return None


def require_vllm(feature: str) -> None:
    """Raise a ConfigError for ``feature`` (e.g. "lmforge serve --backend vllm") when vLLM
    cannot run here."""
    problem = vllm_problem()
    if problem:
        raise ConfigError(f"{feature}: {problem}", HINT)

