"""Render a conversation with a chat template and report the assistant spans (character ranges).

Templates with ``{% generation %}`` markers report the spans themselves (transformers' own
mechanism behind ``return_assistant_tokens_mask``). Many tokenizers ship templates without markers
(SmolLM2's ChatML, for one); for those the spans are derived by rendering prefixes: the text an
assistant turn adds is ``render(messages[:i+1]) - render(messages[:i], add_generation_prompt)``,
cut after the first special token that follows the message (its end-of-turn token). The derived
spans equal the marked ones for the same template (tested). A template whose renders are not
prefix-consistent (e.g. one that rewrites earlier turns) raises ``TemplateError``, whose hint names
the way out: the template copied to a ``.jinja`` file with the markers added.

Tool calling: ``tools`` (JSON schemas) is passed to the template; an assistant turn with
``tool_calls`` is trained like any assistant turn (its span ends at the end-of-turn token after
the calls); tool results are context, unless a ``tool`` message carries ``"train": True``
(``data.train_on_tool_results``): then its content, as rendered, is a trained span too.
"""

from __future__ import annotations

import re
from importlib import resources

from lmforge.errors import ConfigError

_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")


class TemplateError(ConfigError):
    """The template cannot be used to locate assistant text."""


def _builtins() -> str:
    files = resources.files("lmforge.data").joinpath("templates")
    return ", ".join(sorted(p.name[:-6] for p in files.iterdir() if p.name.endswith(".jinja")))


def _refusal(reason: str) -> TemplateError:
    return TemplateError(
        f"model.template: the chat template {reason}, so the assistant text cannot be located; "
        f"choose a built-in template ({_builtins()}) or mark the model's own template",
        hint="copy the tokenizer's chat_template (tokenizer_config.json or chat_template.jinja) "
        "into a .jinja file, wrap each assistant message's output in {% generation %}...{% "
        "endgeneration %} (end-of-turn token included), and set model.template: "
        "path/to/that.jinja (docs/templates.md); the template must match what the model was "
        "trained with")


def has_generation_markers(template: str) -> bool:
    return _MARKER.search(template) is not None


def template_kwargs(tokenizer) -> dict:
    return dict(getattr(tokenizer, "special_tokens_map", {}) or {})


def _tools(tools) -> list | None:
    return list(tools) if tools else None


def render_text(messages: list[dict], template: str, tokenizer,
                add_generation_prompt: bool = False, tools=None) -> str:
    """The rendered text (the same call apply_chat_template makes, without tokenizing)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    texts, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                     add_generation_prompt=add_generation_prompt,
                                     tools=_tools(tools), **template_kwargs(tokenizer))
    return texts[0]


def _render_marked(messages, template, tokenizer, add_generation_prompt, tools=None):
    from transformers.utils.chat_template_utils import render_jinja_template

    texts, spans = render_jinja_template(
        conversations=[messages], chat_template=template, return_assistant_tokens_mask=True,
        add_generation_prompt=add_generation_prompt, tools=_tools(tools),
        **template_kwargs(tokenizer))
    return texts[0], [tuple(s) for s in spans[0] if s[1] > s[0]]


def special_strings(tokenizer) -> list[str]:
    """Text of every special token (eos, im_end, eot_id, ...), longest first."""
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(tok, "special", False):
            found.add(str(tok.content) if hasattr(tok, "content") else str(tok))
    return sorted((s for s in found if s), key=len, reverse=True)


def _turn_end(tail: str, specials: list[str]) -> int:
    """Length of the assistant text after its content: up to and including the first special
    token, if only whitespace comes before it; else 0 (the template adds no end-of-turn)."""
    best = None
    for s in specials:
        k = tail.find(s)
        if k >= 0 and not tail[:k].strip() and (best is None or k < best[0]):
            best = (k, k + len(s))
    return best[1] if best else 0


def _calls_end(added: str, start: int, m: dict, specials: list[str]) -> int:
    """End of an assistant turn with tool calls: after the first special token that follows the
    last call's function name (or the end of the added text when no special token comes)."""
    name = m["tool_calls"][-1]["function"]["name"]
    k = added.find(name, start)
    if k < 0:
        raise _refusal("does not render the tool calls of assistant messages")
    ends = [j + len(s) for s in specials if (j := added.find(s, k)) >= 0]
    return min(ends) if ends else len(added.rstrip())


def _derive(messages, template, tokenizer, tools=None):
    full = render_text(messages, template, tokenizer, tools=tools)
    specials = special_strings(tokenizer)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = render_text(messages[:i], template, tokenizer, True, tools)
        upto = render_text(messages[: i + 1], template, tokenizer, tools=tools)
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise _refusal("has no {% generation %} markers and its renders are not "
                           "prefix-consistent (it rewrites earlier turns, as Phi-3.5's and "
                           "Qwen3's do)")
        added = upto[len(prefix):]
        content = m["content"]
        k = added.find(content)
        if k < 0:
            content = content.strip()
            k = added.find(content)
        if k < 0:
            raise _refusal("changes assistant messages (their text is not in the render)")
        end = k + len(content)
        if m.get("tool_calls"):
            end = _calls_end(added, end, m, specials)
        else:
            end += _turn_end(added[end:], specials)
        spans.append((len(prefix), len(prefix) + end))
    return full, spans


def _tool_result_spans(text: str, messages: list[dict], spans: list) -> list[tuple[int, int]]:
    """The rendered content of each tool message flagged ``train``, found in order after the
    assistant turn that called it; merged with ``spans``."""
    out, at, turn = list(spans), 0, 0
    for m in messages:
        if m["role"] == "assistant":
            at = max(at, spans[turn][1]) if turn < len(spans) else at
            turn += 1
        elif m["role"] == "tool" and m.get("train") and m["content"]:
            k = text.find(m["content"], at)
            if k < 0:
                raise _refusal("changes tool results (their text is not in the render)")
            at = k + len(m["content"])
            out.append((k, at))
    return sorted(out)


def render_spans(messages: list[dict], template: str, tokenizer,
                 add_generation_prompt: bool = False,
                 tools=None) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text and the (start, end) character span of every assistant turn (and of the
    tool results flagged ``train``)."""
    try:
        if has_generation_markers(template):
            text, spans = _render_marked(messages, template, tokenizer, add_generation_prompt,
                                         tools)
        else:
            text, spans = _derive(messages, template, tokenizer, tools)
        if any(m.get("train") for m in messages if m["role"] == "tool"):
            spans = _tool_result_spans(text, messages, spans)
        return text, spans
    except TemplateError:
        raise
    except Exception as exc:  # jinja raise_exception() in templates, undefined variables, ...
        raise TemplateRenderError(exc) from None


class TemplateRenderError(ValueError):
    """The template refused or failed to render one conversation (reported per row)."""

    def __init__(self, exc: Exception):
        super().__init__(f"the chat template failed to render it ({type(exc).__name__}: {exc})")
