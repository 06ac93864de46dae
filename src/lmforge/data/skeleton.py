"""Rendering by skeleton: the one rendering shortcut of the encoder (``encode.py``).

Jinja renders a conversation in ~40 us with {% generation %} markers, and a template without them
needs 2 renders per assistant turn more (``render.py`` derives the spans from prefixes). Here the
template is rendered ONCE per conversation shape (the sequence of roles) with sentinel strings as
contents; an example's text is the skeleton with its contents substituted, and its assistant spans
are the skeleton's spans moved by the length differences. Measured on the preprocessing benchmark
(20,000 chats, docs/performance.md) it renders ~3x faster than Jinja with markers, more without.

That is only valid where the template passes contents through untouched, so a shape is used only
if (1) every sentinel appears exactly once and no span boundary cuts one, (2) probe contents full
of characters templates escape, trim or test (quotes, backslashes, newlines, ``<``, ``&``, tabs,
mixed case, non-ASCII) come out of the substitution exactly as Jinja renders them. A conversation
takes Jinja when a content has leading/trailing whitespace (``| trim``), contains the sentinel
characters or a markup-like string literal of the template (``</think>``, ``<tool_response>``,
...: what a template could branch on) or equals any string literal of the template (``== 'boom'``),
when it has tools, tool calls or tool results, or a message
key beyond role/content that the template names. The encoder also renders the first conversation
of every shape and every ``VERIFY_EVERY``-th one with Jinja and compares (``encode.py``).
"""

from __future__ import annotations

import logging
import re
from itertools import accumulate

from lmforge.data.render import TemplateError, TemplateRenderError, render_spans
from lmforge.data.types import Conversation

log = logging.getLogger(__name__)

VERIFY_EVERY = 32  # every n-th conversation is also rendered by Jinja (and tokenized twice)
OPEN, CLOSE = "\ue000", "\ue001"  # private-use characters: never in real text we accept
PROBES = ("a \"q\" 'x' \\ b\n\tc <d> & É 中文 Mixed", "{{ x }} {% y %} \n\n- item\r\nend")
_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_MARKUP = set("<>[]|")
_PLAIN_KEYS = ("role", "content")


def _sentinel(i: int) -> str:
    return f"{OPEN}{i}{CLOSE}"


def _literals(template: str):
    for m in _LITERAL.finditer(template):
        lit = (m.group(1) if m.group(1) is not None else m.group(2) or "")
        yield lit.encode("utf-8").decode("unicode_escape", errors="ignore") if "\\" in lit else lit


def template_markers(template: str) -> list[str]:
    """Markup-like string literals of a template (a content containing one is rendered slowly)."""
    return sorted({lit.strip() for lit in _literals(template)
                   if len(lit.strip()) >= 2 and _MARKUP & set(lit.strip())})


def template_literals(template: str) -> frozenset[str]:
    """Every string literal of a template: a content EQUAL to one is rendered slowly (the template
    may compare contents to it, e.g. ``{% if m['content'] == 'boom' %}``, which the probes of a
    shape cannot see)."""
    return frozenset(lit for lit in _literals(template) if lit)


class Skeleton:
    """A template rendered for one conversation shape, with sentinel contents."""

    def __init__(self, roles: tuple[str, ...], template: str, tokenizer):
        msgs = [{"role": r, "content": _sentinel(i)} for i, r in enumerate(roles)]
        text, spans = render_spans(msgs, template, tokenizer)
        parts = re.split(f"{OPEN}(\\d+){CLOSE}", text)
        self.literals, self.order = parts[0::2], [int(x) for x in parts[1::2]]
        if sorted(self.order) != list(range(len(roles))):
            raise TemplateError("a content is repeated, dropped or reordered by the template")
        self.bounds = [self._locate(p) for s in spans for p in s]
        self.parts = [x for lit in self.literals for x in (lit, None)][:-1]
        self.anchors = [(2 * k, off) for k, off in self.bounds]  # (part index, offset in it)
        self.in_order = self.order == list(range(len(roles)))

    def _locate(self, pos: int) -> tuple[int, int]:
        """(literal index, offset in it) of a skeleton position outside every sentinel."""
        at = 0
        for k, lit in enumerate(self.literals):
            if pos <= at + len(lit):
                return k, pos - at
            at += len(lit)
            sentinel = len(_sentinel(self.order[k]))
            if pos < at + sentinel:
                raise TemplateError("a span boundary falls inside a content")
            at += sentinel
        raise TemplateError("a span boundary lies outside the render")

    def render(self, contents: list[str]) -> tuple[str, list[tuple[int, int]]]:
        parts = self.parts.copy()  # literal, content, literal, ..., literal
        parts[1::2] = contents if self.in_order else [contents[i] for i in self.order]
        at = [0, *accumulate(map(len, parts))]  # at[j]: where part j starts
        pos = [at[j] + off for j, off in self.anchors]
        return "".join(parts), list(zip(pos[0::2], pos[1::2]))


class Renderer:
    """Renders conversations by skeleton; None for those that need Jinja."""

    def __init__(self, template: str, tokenizer):
        self.template, self.tokenizer = template, tokenizer
        self.markers = template_markers(template)
        self.literals = template_literals(template)
        self._unsafe = re.compile("|".join(map(re.escape, [OPEN, CLOSE, *self.markers]))).search
        self._joint = None if any("\x00" in m for m in self.markers) else "\x00"
        self.skeletons: dict[tuple, Skeleton | None] = {}

    def _skeleton(self, roles: tuple[str, ...]) -> Skeleton | None:
        if roles not in self.skeletons:
            self.skeletons[roles] = self._build(roles)
        return self.skeletons[roles]

    def _build(self, roles: tuple[str, ...]) -> Skeleton | None:
        try:
            sk = Skeleton(roles, self.template, self.tokenizer)
            for probe in PROBES:
                msgs = [{"role": r, "content": f"{probe} {i}"} for i, r in enumerate(roles)]
                if sk.render([m["content"] for m in msgs]) != \
                        render_spans(msgs, self.template, self.tokenizer):
                    return None
            return sk
        except Exception as exc:  # the template refuses this shape: Jinja reports it per row
            log.debug("no skeleton for %s: %s", roles, exc)
            return None

    def _plain(self, message: dict) -> bool:
        """Only role and content matter to the template (no tool call, no tool result, no
        other key the template names, such as alpaca's ``input``)."""
        if len(message) == 2:  # role and content only
            return message["role"] != "tool"
        if message["role"] == "tool" or "tool_calls" in message:
            return False
        return all(k in _PLAIN_KEYS or k not in self.template for k in message)

    def eligible(self, contents: list[str]) -> bool:
        unsafe = self._unsafe
        for c in contents:
            if not c or c[0].isspace() or c[-1].isspace() or unsafe(c) \
                    or c in self.literals:  # | trim, markers, == 'literal'
                return False
        return True

    def render(self, conv: Conversation) -> tuple[str, list[tuple[int, int]]] | None:
        return self.render_shaped(conv)[0]

    def render_shaped(self, conv: Conversation):
        """(render or None, the conversation's roles: its shape, when rendered)."""
        if conv.tools:
            return None, None
        literals, contents, roles = self.literals, [], []
        for m in conv.messages:  # eligible() and _plain() of every message, in one pass
            c = m["content"]
            if not isinstance(c, str) or not c or c[0].isspace() or c[-1].isspace() \
                    or c in literals or (len(m) != 2 or m["role"] == "tool") \
                    and not self._plain(m):
                return None, None
            contents.append(c)
            roles.append(m["role"])
        if self._joint is not None:  # one search: no marker holds the joint, none spans two
            if self._unsafe(self._joint.join(contents)):
                return None, None
        elif any(map(self._unsafe, contents)):
            return None, None
        roles = tuple(roles)
        sk = self.skeletons[roles] if roles in self.skeletons else self._skeleton(roles)
        return (None, None) if sk is None else (sk.render(contents), roles)


class BatchRender:
    """Renders the conversations of one batch chunk by chunk: (text, spans) or the row's
    TemplateRenderError, and how each was rendered. The shortcut renders what it can; the first
    conversation of every shape and every ``VERIFY_EVERY``-th shortcut render of the batch are
    also rendered by Jinja. One difference sets ``disagreed`` (and drops the shortcut): the caller
    renders the whole batch again with a ``BatchRender`` without shortcut."""

    def __init__(self, template: str, tokenizer, shortcut: Renderer | None):
        self.template, self.tokenizer, self.shortcut = template, tokenizer, shortcut
        self.seen: set = set()
        self.count = self.done = 0
        self.disagreed = False

    def render(self, convs: list) -> tuple[list, list[str]]:
        out: list = [None] * len(convs)
        how = ["template"] * len(convs)
        if self.shortcut is not None:
            check = []
            render = self.shortcut.render_shaped
            for k, conv in enumerate(convs):
                out[k], shape = render(conv)
                if shape is not None:
                    if shape not in self.seen or self.count % VERIFY_EVERY == 0:
                        self.seen.add(shape)
                        check.append(k)
                    how[k] = "skeleton"
                    self.count += 1
            for k in check:
                try:
                    same = render_spans(convs[k].as_list(), self.template,
                                        self.tokenizer) == out[k]
                except Exception:  # noqa: BLE001 - Jinja refuses it: the shortcut must not
                    same = False
                if not same:
                    log.warning("the rendering shortcut disagrees with the chat template on %s; "
                                "rendering this batch with the template",
                                convs[k].where or f"#{self.done + k}")
                    self.disagreed, self.shortcut = True, None
                    return [], []
        for k, conv in enumerate(convs):
            if out[k] is None:
                try:
                    out[k] = render_spans(conv.as_list(), self.template, self.tokenizer,
                                          tools=conv.tools)
                except (TemplateRenderError, TemplateError) as exc:  # the caller decides
                    out[k] = exc
        self.done += len(convs)
        return out, how
