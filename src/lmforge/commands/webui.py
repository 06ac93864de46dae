"""lmforge webui: a browser UI to chat with a model and to configure and start training runs
(extra ``webui``). Binds 127.0.0.1 by default."""

from __future__ import annotations

from lmforge.commands._inference import add_generation_arguments, add_model_arguments

HELP = "web UI (gradio): chat with a model, build and start training runs"


def add_arguments(parser) -> None:
    add_model_arguments(parser, required=False)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default "
                        "127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=7860)
    add_generation_arguments(parser)


def run(args) -> int:
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from lmforge.commands._inference import DEFAULT_MAX_NEW_TOKENS, default_system, generation
    from lmforge.errors import require
    from lmforge.utils.logs import setup

    require("gradio", "webui", "lmforge webui")
    from lmforge.webui.app import build, launch
    from lmforge.webui.chat import Holder

    setup()
    holder = Holder()
    holder.precision = args.precision
    if args.model:
        engine = holder.load(args.model, args.adapter, args.template)
        holder.use(engine, generation(args, engine), default_system(args, engine))
    demo = build(holder, args.model, args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS)
    launch(demo, args.host, args.port)
    return 0
