"""Render a conversation with a chat template and report the assistant spans (character ranges).

Templates with ``{% generation %}`` markers report the spans themselves (transformers' own
mechanism behind ``return_assistant_tokens_mask``). Many tokenizers ship templates without markers
(SmolLM2's ChatML, for one); for those the spans are derived by rendering prefixes: the text an
assistant turn adds is ``render(messages[:i+1]) - render(messages[:i], add_generation_prompt)``,
cut after the first special token that follows the message (its end-of-turn token). The derived
spans equal the marked ones for the same template (tested). A template whose renders are not
prefix-consistent (e.g. one that rewrites earlier turns) raises ``TemplateError``.
"""

from __future__ import annotations

import re

from lmforge.errors import ConfigError

_BUILTINS = "alpaca, chatml, llama2, llama3, qwen, plain"
_HINT = "e.g. model.template: chatml (the template must match what the model was trained with)"
_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")


class TemplateError(ConfigError):
    """The template cannot be used to locate assistant text."""


def has_generation_markers(template: str) -> bool:
    return _MARKER.search(template) is not None


def template_kwargs(tokenizer) -> dict:
    return dict(getattr(tokenizer, "special_tokens_map", {}) or {})


def render_text(messages: list[dict], template: str, tokenizer,
                add_generation_prompt: bool = False) -> str:
    """The rendered text (the same call apply_chat_template makes, without tokenizing)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    texts, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                     add_generation_prompt=add_generation_prompt,
                                     **template_kwargs(tokenizer))
    return texts[0]


def _render_marked(messages, template, tokenizer, add_generation_prompt):
    from transformers.utils.chat_template_utils import render_jinja_template

    texts, spans = render_jinja_template(
        conversations=[messages], chat_template=template, return_assistant_tokens_mask=True,
        add_generation_prompt=add_generation_prompt, **template_kwargs(tokenizer))
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


def _derive(messages, template, tokenizer):
    full = render_text(messages, template, tokenizer)
    specials = special_strings(tokenizer)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = render_text(messages[:i], template, tokenizer, add_generation_prompt=True)
        upto = render_text(messages[: i + 1], template, tokenizer)
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise TemplateError(
                "model.template: the chat template has no {% generation %} markers and its "
                "renders are not prefix-consistent, so the assistant text cannot be located; "
                f"choose a built-in template ({_BUILTINS})", hint=_HINT)
        added = upto[len(prefix):]
        content = m["content"]
        k = added.find(content)
        if k < 0:
            content = content.strip()
            k = added.find(content)
        if k < 0:
            raise TemplateError("model.template: the chat template changes assistant messages "
                                "(their text is not in the render), so the trained span cannot "
                                f"be located; choose a built-in template ({_BUILTINS})",
                                hint=_HINT)
        end = k + len(content)
        end += _turn_end(added[end:], specials)
        spans.append((len(prefix), len(prefix) + end))
    return full, spans


def render_spans(messages: list[dict], template: str, tokenizer,
                 add_generation_prompt: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text and the (start, end) character span of every assistant turn."""
    try:
        if has_generation_markers(template):
            return _render_marked(messages, template, tokenizer, add_generation_prompt)
        return _derive(messages, template, tokenizer)
    except TemplateError:
        raise
    except Exception as exc:  # jinja raise_exception() in templates, undefined variables, ...
        raise TemplateRenderError(exc) from None


class TemplateRenderError(ValueError):
    """The template refused or failed to render one conversation (reported per row)."""

    def __init__(self, exc: Exception):
        super().__init__(f"the chat template failed to render it ({type(exc).__name__}: {exc})")
