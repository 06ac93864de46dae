"""lmforge serve: an OpenAI-compatible HTTP API on a model or a run (extra ``serve``).

Back-pressure: ``--max-concurrency`` requests are generated at a time (batched when their
settings match), ``--max-queue`` more wait; beyond that a request gets 429 with Retry-After.
"""

from __future__ import annotations

from lmforge.commands._inference import add_generation_arguments, add_model_arguments
from lmforge.commands._rope import add_rope_argument
from lmforge.infer.vllm_backend import add_backend_argument

HELP = "serve a model or a run over an OpenAI-compatible HTTP API (/v1/chat/completions, ...)"


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    add_rope_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default "
                        "127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' "
                        "(better: set LMFORGE_API_KEY, which ps does not show)")
    parser.add_argument("--max-concurrency", type=int, default=8, metavar="N",
                        help="requests generated at a time, batched together (default 8)")
    parser.add_argument("--max-queue", type=int, default=64, metavar="N",
                        help="requests waiting for a slot; more get 429 (default 64)")
    parser.add_argument("--max-request-bytes", type=int, default=1 << 20, metavar="N",
                        help="larger request bodies get 413 while they are read (default 1 MiB)")
    parser.add_argument("--max-prompt-chars", type=int, metavar="N",
                        help="longer prompts get 400 before tokenizing (default: the context "
                        "length x the longest vocabulary entry, which no fitting prompt exceeds)")
    parser.add_argument("--served-model-name", metavar="NAME", help="the model id clients "
                        "use (default: the model directory's name)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    add_generation_arguments(parser)
    add_backend_argument(parser)


def served_name(model: str) -> str:
    from pathlib import PurePath

    return PurePath(model.removeprefix("builtin:").rstrip("/\\")).name or model


def run(args) -> int:
    from lmforge.commands._inference import default_system, generation, load_engine
    from lmforge.errors import ConfigError, require
    from lmforge.utils.logs import setup

    require("fastapi", "serve", "lmforge serve")
    require("uvicorn", "serve", "lmforge serve")
    from lmforge.serve.app import Settings
    from lmforge.serve.server import api_key, serve

    setup()
    if args.max_concurrency < 1 or args.max_queue < 0:
        raise ConfigError("--max-concurrency must be at least 1 and --max-queue at least 0")
    if args.max_request_bytes < 1024 or (args.max_prompt_chars or 1) < 1:
        raise ConfigError("--max-request-bytes must be at least 1024 and --max-prompt-chars "
                          "at least 1")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port: {args.port} is not a TCP port")
    from lmforge.infer.vllm_backend import engine_class

    if engine_class(args.backend, "lmforge serve").__name__ == "VLLMEngine":  # before loading
        from lmforge.infer.vllm_engine import VLLMEngine

        engine = VLLMEngine.load(args.model, adapter=args.adapter, template=args.template,
                                 batch_size=args.max_concurrency,
                                 rope_scaling=getattr(args, "rope_scaling", None))
    else:
        engine = load_engine(args, batch_size=args.max_concurrency)
    name = args.served_model_name or served_name(args.model)
    settings = Settings(name=name, gen=generation(args, engine),
                        system=default_system(args, engine), api_key=api_key(args.api_key),
                        aliases=(args.model,), max_body=args.max_request_bytes,
                        max_prompt_chars=args.max_prompt_chars)
    serve(engine, settings, args.host, args.port, args.max_concurrency, args.max_queue,
          args.log_level)
    return 0
