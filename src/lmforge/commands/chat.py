"""lmforge chat: talk to a model or a run in the terminal (streaming, history, slash commands).

With stdin not a terminal it reads one user turn per line and writes one answer per line, so it
can be scripted: ``printf 'hi\\n/reset\\nhi\\n' | lmforge chat runs/tiny-sft``.

``--tools FILE.json`` (a JSON list of tool schemas) gives the tools to the chat template on every
turn; tool calls in the answers are parsed, and ``/tool TEXT`` returns a result to the model.
"""

from __future__ import annotations

from lmforge.commands._inference import add_generation_arguments, add_model_arguments
from lmforge.commands._rope import add_rope_argument

HELP = "chat with a model or a run in the terminal (/reset, /system TEXT, /tool TEXT, /exit)"


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    add_rope_argument(parser)
    add_generation_arguments(parser)
    parser.add_argument("--tools", metavar="FILE.json", help="a JSON list of tool schemas "
                        "given to the chat template (OpenAI's {\"type\": \"function\", "
                        "\"function\": {...}} or bare {\"name\", \"parameters\"}); the "
                        "template must take tools (e.g. --template chatml_tools)")


def run(args) -> int:
    import logging

    from lmforge.commands._inference import (default_system, generation, load_engine,
                                             read_tools)
    from lmforge.infer.repl import repl
    from lmforge.infer.tool_calls import refuse_without
    from lmforge.utils.logs import setup

    setup(logging.WARNING)  # stdout carries the answers only
    tools = read_tools(args.tools) if args.tools else None  # a bad file fails before loading
    engine = load_engine(args, batch_size=1)
    if tools:
        refuse_without(engine.call_format, engine.name)
    return repl(engine, generation(args, engine), default_system(args, engine), tools=tools)
