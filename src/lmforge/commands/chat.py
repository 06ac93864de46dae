"""lmforge chat: talk to a model or a run in the terminal (streaming, history, slash commands).

With stdin not a terminal it reads one user turn per line and writes one answer per line, so it
can be scripted: ``printf 'hi\\n/reset\\nhi\\n' | lmforge chat runs/tiny-sft``.
"""

from __future__ import annotations

from lmforge.commands._inference import add_generation_arguments, add_model_arguments
from lmforge.commands._rope import add_rope_argument

HELP = "chat with a model or a run in the terminal (/reset, /system TEXT, /exit)"


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    add_rope_argument(parser)
    add_generation_arguments(parser)


def run(args) -> int:
    import logging

    from lmforge.commands._inference import default_system, generation, load_engine
    from lmforge.infer.repl import repl
    from lmforge.utils.logs import setup

    setup(logging.WARNING)  # stdout carries the answers only
    engine = load_engine(args, batch_size=1)
    return repl(engine, generation(args, engine), default_system(args, engine))
