"""``data.template_system: drop``: a chat template without its default system prompt.

Many chat templates put a system turn in front of every conversation that has none: SmolLM2's
"You are a helpful AI assistant named SmolLM, trained by Hugging Face" (~20 tokens per example),
Qwen 2.5's "You are Qwen, created by Alibaba Cloud...", the Alpaca preamble.
``without_default_system`` returns a template that renders exactly what the original renders,
except that this injected block is cut out of conversations without a system message (with one,
nothing changes). The
result is an ordinary Jinja template: it is what the run trains with, and it is saved with the
run's tokenizer, so ``lmforge eval``/``chat``/``serve``, exports and the Ollama Modelfile render
the same prompts.

How the block is found, by rendering probes (nothing is parsed): ``A`` = one user turn alone,
``B`` = the same after a system turn with a sentinel content. ``A`` must be ``B`` with the
sentinel replaced by the default text ``X`` (else the template injects nothing and is returned
unchanged). The block ends where the user turn's header starts (the header is what precedes a
user turn after an assistant turn, past the assistant's end-of-turn token), and starts after the
document prefix (BOS), found from the user header with its role renamed, or the BOS token. The
wrapper renders the original template into a variable and, for a conversation without a system
turn, removes the block when it is there verbatim. ``{% generation %}`` markers become plain ``if``
blocks (the spans are then derived, ``render.py``); a template for which the rewrite does not
reproduce the expected text raises ``TemplateError``.
"""

from __future__ import annotations

import json
import re

from lmforge.data.render import TemplateError, render_text, special_strings

_SENT = "LMFORGE-SYSTEM-PROBE"
_P1, _R1, _P2 = "LMFORGE-USER-1", "LMFORGE-ANSWER-1", "LMFORGE-USER-2"
_OPEN = re.compile(r"\{%(-?)\s*generation\s*(-?)%\}")
_CLOSE = re.compile(r"\{%(-?)\s*endgeneration\s*(-?)%\}")


def _unmarked(template: str) -> str:
    """The template with {% generation %} blocks turned into always-true ifs (same whitespace
    control, same output)."""
    template = _OPEN.sub(lambda m: "{%" + m.group(1) + " if true " + m.group(2) + "%}", template)
    return _CLOSE.sub(lambda m: "{%" + m.group(1) + " endif " + m.group(2) + "%}", template)


def _footer(tail: str, specials: list[str]) -> int:
    """Length of an end-of-turn at the start of ``tail``: the first special token (if only
    whitespace precedes it) and the whitespace after it; else the leading whitespace."""
    best = None
    for s in specials:
        k = tail.find(s)
        if k >= 0 and not tail[:k].strip() and (best is None or k < best[0]):
            best = (k, k + len(s))
    end = best[1] if best else 0
    return end + len(tail[end:]) - len(tail[end:].lstrip())


def injected_block(template: str, tokenizer) -> tuple[int, int, str] | None:
    """(start, end, text) of the default system block in a one-user-turn render, or None."""
    def render(msgs):
        return render_text(msgs, template, tokenizer)

    user1 = {"role": "user", "content": _P1}
    try:
        a = render([user1])
        b = render([{"role": "system", "content": _SENT}, user1])
        c = render([{"role": "system", "content": _SENT}, user1,
                    {"role": "assistant", "content": _R1}, {"role": "user", "content": _P2}])
    except Exception:  # noqa: BLE001 - a template without system turns has no default to drop
        return None
    k = b.find(_SENT)
    head, tail = b[:k], b[k + len(_SENT):]
    if k < 0 or a == b or not (a.startswith(head) and a.endswith(tail)) or \
            len(a) < len(head) + len(tail):
        return None
    gap = c[c.find(_R1) + len(_R1):c.find(_P2)]
    header = gap[_footer(gap, special_strings(tokenizer)):]
    end = a.find(_P1) - len(header)
    if end < 0 or a[end:a.find(_P1)] != header:
        raise TemplateError("data.template_system: drop: cannot tell where the chat template's "
                            "default system turn ends",
                            hint="keep it (data.template_system: keep) or give the rows a "
                            "system prompt (data.system)")
    bos = getattr(tokenizer, "bos_token", None) or ""
    as_system = header.replace("user", "system", 1)
    if "user" in header and head.endswith(as_system):
        start = k - len(as_system)
    elif bos and a.startswith(bos) and not header.startswith(bos):
        start = len(bos)
    else:
        start = 0
    return (start, end, a[start:end]) if end > start else None


def without_default_system(template: str, tokenizer) -> str:
    """``template`` minus its default system turn (unchanged when it injects none)."""
    found = injected_block(template, tokenizer)
    if found is None:
        return template
    start, end, block = found
    wrapped = ("{%- set lmforge_plain = messages | length > 0 and messages[0]['role'] != "
               "'system' -%}{% set lmforge_text %}" + _unmarked(template) + "{% endset %}"
               "{%- if lmforge_plain and lmforge_text[" + f"{start}:{end}" + "] == "
               + json.dumps(block, ensure_ascii=False) + " -%}{{ lmforge_text[:" + str(start)
               + "] ~ lmforge_text[" + str(end) + ":] }}{%- else -%}{{ lmforge_text }}"
               "{%- endif -%}")
    probe = [{"role": "user", "content": _P1}]
    a = render_text(probe, template, tokenizer)
    if render_text(probe, wrapped, tokenizer) != a[:start] + a[end:]:
        raise TemplateError("data.template_system: drop: the rewritten chat template does not "
                            "render the conversation without its default system turn",
                            hint="keep it (data.template_system: keep) or give the rows a "
                            "system prompt (data.system)")
    return wrapped
