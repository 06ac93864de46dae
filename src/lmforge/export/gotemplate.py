"""A small renderer for the subset of Go's text/template that lmforge's Ollama templates use.

Ollama renders a Modelfile's ``TEMPLATE`` with Go's text/template. To know that a translated
template renders exactly what the run's Jinja chat template renders, lmforge renders both and
compares (at export time, to pick the translation, and in the tests). Supported: text, ``{{- ``
/ `` -}}`` whitespace trimming, ``{{ .Field }}`` / ``{{ $.Field }}`` / ``{{ $var }}`` output,
``$x := expr`` and ``$x = expr``, ``if`` / ``else if`` / ``else`` / ``end``, ``range .List``,
``range $i, $e := .List``, and the functions ``eq ne and or not len``, with Go's truthiness (empty
string, 0, false, nil and empty lists are false; ``and``/``or`` return an argument).
Anything else raises ``GoTemplateError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r'\(|\)|"(?:[^"\\]|\\.)*"|[^\s()]+')
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


class GoTemplateError(ValueError):
    pass


@dataclass
class _Block:
    kind: str  # "root", "if", "range"
    arg: str = ""
    body: list = field(default_factory=list)
    branches: list = field(default_factory=list)  # if: [(cond, body)], else body last with None


def _lex(src: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", s)] with the trim markers applied to the neighbouring text."""
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            parts.append(("text", text))
        parts.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    tail = src[pos:]
    if trim_next:
        tail = tail.lstrip()
    if tail:
        parts.append(("text", tail))
    return parts


def parse(src: str) -> _Block:
    root = _Block("root")
    stack = [root]

    def body():
        top = stack[-1]
        return top.branches[-1][1] if top.kind == "if" else top.body

    for kind, value in _lex(src):
        if kind == "text":
            body().append(("text", value))
        elif value.startswith("if "):
            block = _Block("if", branches=[(value[3:].strip(), [])])
            body().append(block)
            stack.append(block)
        elif value.startswith("else if ") and stack[-1].kind == "if":
            stack[-1].branches.append((value[8:].strip(), []))
        elif value == "else" and stack[-1].kind == "if":
            stack[-1].branches.append((None, []))
        elif value.startswith("range "):
            block = _Block("range", value[6:].strip())
            body().append(block)
            stack.append(block)
        elif value == "end":
            if len(stack) == 1:
                raise GoTemplateError("{{ end }} without an open block")
            stack.pop()
        elif value.startswith("/*"):
            continue
        else:
            body().append(("action", value))
    if len(stack) != 1:
        raise GoTemplateError(f"unclosed {{{{ {stack[-1].kind} }}}}")
    return root


def _truthy(v) -> bool:
    return bool(v) if v is not None else False


def _split_args(tokens: list[str]) -> list:
    """Group parenthesised sub-expressions: ['eq', ['len', '.X'], '1']."""
    out, stack = [], []
    for tok in tokens:
        if tok == "(":
            stack.append(out)
            out = []
        elif tok == ")":
            if not stack:
                raise GoTemplateError("unbalanced ')'")
            inner, out = out, stack.pop()
            out.append(inner)
        else:
            out.append(tok)
    if stack:
        raise GoTemplateError("unbalanced '('")
    return out


class _Scope:
    def __init__(self, root):
        self.root = root
        self.vars: list[dict] = [{"$": root}]

    def lookup(self, name: str):
        for frame in reversed(self.vars):
            if name in frame:
                return frame[name]
        raise GoTemplateError(f"undefined variable {name}")

    def assign(self, name: str, value) -> None:
        for frame in reversed(self.vars):
            if name in frame:
                frame[name] = value
                return
        raise GoTemplateError(f"assignment to undeclared variable {name}")


def _field(obj, path: list[str]):
    for key in path:
        if not key:
            continue
        if not isinstance(obj, dict) or key not in obj:
            raise GoTemplateError(f"no field {key}")
        obj = obj[key]
    return obj


def _operand(tok, dot, scope: _Scope):
    if isinstance(tok, list):
        return _call(tok, dot, scope)
    if tok.startswith('"'):
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), tok[1:-1])
    if tok in ("true", "false"):
        return tok == "true"
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    if tok == ".":
        return dot
    if tok.startswith("."):
        return _field(dot, tok[1:].split("."))
    if tok.startswith("$"):
        var, _, rest = tok.partition(".")
        return _field(scope.lookup(var), rest.split(".")) if rest else scope.lookup(var)
    raise GoTemplateError(f"unsupported operand {tok!r}")


def _call(tokens: list, dot, scope: _Scope):
    head, args = tokens[0], tokens[1:]
    if isinstance(head, list) or head not in ("eq", "ne", "and", "or", "not", "len"):
        if args:
            raise GoTemplateError(f"unsupported function {head!r}")
        return _operand(head, dot, scope)
    if head in ("and", "or"):
        value = None
        for a in args:  # short-circuit, returning the deciding argument
            value = _operand(a, dot, scope)
            if _truthy(value) != (head == "and"):
                return value
        return value
    vals = [_operand(a, dot, scope) for a in args]
    if head == "not":
        return not _truthy(vals[0])
    if head == "len":
        return len(vals[0])
    if head == "eq":
        return any(vals[0] == v for v in vals[1:])
    return vals[0] != vals[1]


def _eval(expr: str, dot, scope: _Scope):
    return _call(_split_args(_TOKEN.findall(expr)), dot, scope)


def _run(nodes: list, dot, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Block):
            _run_block(node, dot, scope, out)
        elif node[0] == "text":
            out.append(node[1])
        else:
            m = re.fullmatch(r"(\$\w*)\s*(:?=)\s*(.+)", node[1], re.S)
            if m:
                value = _eval(m.group(3), dot, scope)
                if m.group(2) == ":=":
                    scope.vars[-1][m.group(1)] = value
                else:
                    scope.assign(m.group(1), value)
                continue
            value = _eval(node[1], dot, scope)
            out.append("" if value is None else str(value).lower()
                       if isinstance(value, bool) else str(value))


def _run_block(block: _Block, dot, scope: _Scope, out: list[str]) -> None:
    scope.vars.append({})
    try:
        if block.kind == "if":
            for cond, body in block.branches:
                if cond is None or _truthy(_eval(cond, dot, scope)):
                    _run(body, dot, scope, out)
                    break
            return
        m = re.fullmatch(r"(?:(\$\w+)\s*(?:,\s*(\$\w+))?\s*:=\s*)?(.+)", block.arg, re.S)
        items = _eval(m.group(3), dot, scope) or []
        for i, item in enumerate(items):
            if m.group(2):
                scope.vars[-1].update({m.group(1): i, m.group(2): item})
            elif m.group(1):
                scope.vars[-1][m.group(1)] = item
            _run(block.body, item, scope, out)
    finally:
        scope.vars.pop()


def render(src: str, data: dict) -> str:
    """Render ``src`` with ``data`` as the dot (``.Messages``, ``.System``, ...)."""
    out: list[str] = []
    _run(parse(src).body, data, _Scope(data), out)
    return "".join(out)
