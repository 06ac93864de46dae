"""The terminal chat loop with a fake engine: one answer line per input line, history carried
between turns, /reset, /system, /exit, unknown commands on stderr."""

from __future__ import annotations

import io

from lmforge.infer.repl import Conversation, command, repl


class Echo:
    """Answers with the number of messages it was given and the last user text."""

    name = "echo"

    def __init__(self):
        self.seen: list[list[dict]] = []

    def stream(self, messages, gen=None):
        self.seen.append(list(messages))
        yield f"{len(messages)}:"
        yield messages[-1]["content"].upper()


def _run(text: str, system=None):
    engine, out, err = Echo(), io.StringIO(), io.StringIO()
    code = repl(engine, None, system, stdin=io.StringIO(text), out=out, err=err)
    return code, engine, out.getvalue(), err.getvalue()


def test_piped_lines_history_reset_and_exit():
    code, engine, out, err = _run("hi\n\nthere\n/reset\nagain\n/system be brief\nok\n/exit\nno\n")
    assert code == 0
    assert out == "1:HI\n3:THERE\n1:AGAIN\n2:OK\n"  # "no" after /exit is never answered
    assert engine.seen[1] == [{"role": "user", "content": "hi"},
                              {"role": "assistant", "content": "1:HI"},
                              {"role": "user", "content": "there"}]
    assert engine.seen[3][0] == {"role": "system", "content": "be brief"}
    assert "conversation cleared" in err and "system prompt set" in err


def test_default_system_prompt_and_unknown_command():
    code, engine, out, err = _run("/nope\nhello", system="sys")
    assert code == 0 and out == "2:HELLO\n"  # the last line needs no newline
    assert engine.seen[0][0] == {"role": "system", "content": "sys"}
    assert "unknown command /nope" in err


def test_commands():
    conv = Conversation("s")
    conv.add("a", "b")
    assert command(conv, "/reset") == (True, "(conversation cleared)") and conv.turns == []
    go, _ = command(conv, "/system")
    assert go and conv.system is None and conv.messages("x") == [{"role": "user",
                                                                  "content": "x"}]
    assert command(conv, "/quit")[0] is False and command(conv, "/EXIT")[0] is False
