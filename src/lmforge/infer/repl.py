"""Terminal chat on a ChatEngine (``lmforge chat``): streamed answers, multi-turn history and a
few slash commands.

On a terminal it is an interactive prompt (readline editing). When stdin is not a terminal it is
scriptable: every non-empty input line is one user turn and its answer is written to stdout,
streamed as it is generated, followed by a newline (an answer may itself hold newlines); commands
are answered on stderr, so stdout holds the answers only.

With tools (``lmforge chat --tools FILE.json``) the schemas go to the chat template on every
turn; an answer that calls tools is kept in the history as the assistant's ``tool_calls`` (the
parsed calls are listed on stderr), and ``/tool TEXT`` gives the result back so the model answers
again.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

HELP = """commands:
  /reset          forget the conversation (the system prompt stays)
  /system TEXT    set the system prompt and start over (/system alone removes it)
  /tool TEXT      give the result of the last tool call(s); the model answers again (--tools)
  /exit, /quit    leave (Ctrl-D too)
  /help           this text"""


class Conversation:
    """The chat so far: an optional system prompt, the turns (tool calls and results included)
    and the tools given to the template."""

    def __init__(self, system: str | None = None, tools: list | None = None):
        self.system = system or None
        self.tools = tools or None
        self.turns: list[dict] = []

    def messages(self, user: str | None = None) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        tail = [{"role": "user", "content": user}] if user is not None else []
        return head + self.turns + tail

    def add(self, user: str | None, answer: str, calls: list[dict] | None = None) -> None:
        """A user turn (None: the answer follows tool results) and the assistant's answer."""
        if user is not None:
            self.turns.append({"role": "user", "content": user})
        turn = {"role": "assistant", "content": answer}
        self.turns.append({**turn, "tool_calls": calls} if calls else turn)

    def called(self) -> bool:
        """True when the last answer called tools (or results of it came already)."""
        return bool(self.turns) and (bool(self.turns[-1].get("tool_calls"))
                                     or self.turns[-1]["role"] == "tool")

    def reset(self) -> None:
        self.turns = []


def command(conv: Conversation, line: str) -> tuple[bool, str]:
    """Apply a slash command; returns (keep going, message for the user)."""
    name, _, rest = line.partition(" ")
    name = name.lower()
    if name in ("/exit", "/quit"):
        return False, ""
    if name == "/reset":
        conv.reset()
        return True, "(conversation cleared)"
    if name == "/system":
        conv.system = rest.strip() or None
        conv.reset()
        return True, ("(system prompt set; conversation cleared)" if conv.system
                      else "(system prompt removed; conversation cleared)")
    if name == "/tool":
        if not conv.called():
            return True, "(/tool gives the result of a tool call, and the last answer made none)"
        conv.turns.append({"role": "tool", "content": rest.strip()})
        return True, ""
    if name == "/help":
        return True, HELP
    return True, f"unknown command {name} (/help lists them)"


def _answer(engine, conv: Conversation, text: str | None, gen, out: TextIO,
            err: TextIO) -> None:
    """Stream the answer to ``text`` (None: to the tool results just given) and keep it."""
    pieces: list[str] = []
    extra = {"tools": conv.tools} if conv.tools else {}
    for piece in engine.stream(conv.messages(text), gen, **extra):
        pieces.append(piece)
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()
    answer, calls = "".join(pieces), []
    if conv.tools:
        content, calls = engine.tool_calls(answer)
        answer = content if calls else answer
        for call in calls:
            fn = call["function"]
            err.write(f"(tool call: {fn['name']}({json.dumps(fn['arguments'])}); give the "
                      "result with /tool TEXT)\n")
        err.flush()
    conv.add(text, answer, calls)


def _read(interactive: bool, stdin: TextIO, err: TextIO) -> str | None:
    if interactive:
        try:
            return input("you> ")
        except EOFError:
            err.write("\n")
            return None
    line = stdin.readline()
    return None if line == "" else line.rstrip("\r\n")


def repl(engine, gen, system: str | None = None, stdin: TextIO | None = None,
         out: TextIO | None = None, err: TextIO | None = None, tools: list | None = None) -> int:
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    interactive = stdin.isatty() and stdin is sys.stdin
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        err.write(f"chatting with {engine.name} (/help for commands, Ctrl-D to leave)\n")
    conv = Conversation(system, tools)
    while True:
        line = _read(interactive, stdin, err)
        if line is None:
            return 0
        if not line.strip():
            continue
        if line.startswith("/"):
            go, message = command(conv, line.strip())
            if message:
                err.write(message + "\n")
                err.flush()
            if not go:
                return 0
            if not (line.lower().startswith("/tool") and conv.turns
                    and conv.turns[-1]["role"] == "tool"):
                continue
        text = None if line.startswith("/") else line  # None: answer the tool result
        if interactive:
            out.write("assistant> ")
        try:
            _answer(engine, conv, text, gen, out, err)
        except KeyboardInterrupt:
            if not interactive:
                raise
            if text is None:
                conv.turns.pop()
            out.write("\n")
            err.write("(interrupted; that turn is not kept)\n")
