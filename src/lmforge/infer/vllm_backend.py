"""``--backend transformers|vllm`` for serve, predict and eval: the flag and the engine class,
chosen after ``vllm_check.require_vllm`` (before any model loads)."""

from __future__ import annotations

from lmforge.infer.vllm_check import require_vllm

BACKENDS = ("transformers", "vllm")


def add_backend_argument(parser) -> None:
    parser.add_argument("--backend", choices=BACKENDS, default="transformers",
                        help="generate with transformers (default; CPU or GPU) or vLLM (batched, "
                        "fast; needs the vllm extra and a CUDA GPU; a full or merged model)")


def engine_class(backend: str, feature: str):
    """The engine class for ``--backend``, after checking that it can run here (before any
    model loads)."""
    if backend == "vllm":
        require_vllm(f"{feature} --backend vllm")
        from lmforge.infer.vllm_engine import VLLMEngine

        return VLLMEngine
    from lmforge.infer.engine import ChatEngine

    return ChatEngine
