"""Terminal chat on a ChatEngine (``lmforge chat``): streamed answers, multi-turn history and a
few slash commands.

On a terminal it is an interactive prompt (readline editing). When stdin is not a terminal it is
scriptable: every non-empty input line is one user turn and its answer is written to stdout,
streamed as it is generated, followed by a newline (an answer may itself hold newlines); commands
are answered on stderr, so stdout holds the answers only.
"""

from __future__ import annotations

import sys
from typing import TextIO

HELP = """commands:
  /reset          forget the conversation (the system prompt stays)
  /system TEXT    set the system prompt and start over (/system alone removes it)
  /exit, /quit    leave (Ctrl-D too)
  /help           this text"""


class Conversation:
    """The chat so far: an optional system prompt and alternating user/assistant turns."""

    def __init__(self, system: str | None = None):
        self.system = system or None
        self.turns: list[dict] = []

    def messages(self, user: str) -> list[dict]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.turns + [{"role": "user", "content": user}]

    def add(self, user: str, answer: str) -> None:
        self.turns += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]

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
    if name == "/help":
        return True, HELP
    return True, f"unknown command {name} (/help lists them)"


def _answer(engine, conv: Conversation, text: str, gen, out: TextIO) -> None:
    pieces: list[str] = []
    for piece in engine.stream(conv.messages(text), gen):
        pieces.append(piece)
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()
    conv.add(text, "".join(pieces))


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
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    stdin, out, err = stdin or sys.stdin, out or sys.stdout, err or sys.stderr
    interactive = stdin.isatty() and stdin is sys.stdin
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        err.write(f"chatting with {engine.name} (/help for commands, Ctrl-D to leave)\n")
    conv = Conversation(system)
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
            continue
        if interactive:
            out.write("assistant> ")
        try:
            _answer(engine, conv, line, gen, out)
        except KeyboardInterrupt:
            if not interactive:
                raise
            out.write("\n")
            err.write("(interrupted; that turn is not kept)\n")
