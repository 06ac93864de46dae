"""Chat templates: the tokenizer's own (``auto``) or a built-in ``.jinja`` file in ``templates/``.

Built-ins wrap assistant text in ``{% generation %}`` markers, so the trained spans are known from
the template itself (the same mechanism as ``return_assistant_tokens_mask``); a tokenizer template
without markers gets its spans derived (see ``render.py``). Training and serving render through
the same functions here (``render_prompt`` for inference), so they cannot drift apart, and
``end_of_turn_id`` gives the token generation must stop at.
"""

from __future__ import annotations

import difflib
import logging
from importlib import resources
from pathlib import Path

from lmforge.data.render import (TemplateError, TemplateRenderError, has_generation_markers,
                                 render_spans, render_text)
from lmforge.errors import ConfigError

log = logging.getLogger(__name__)
__all__ = ["builtin_names", "builtin_template", "resolve_template", "check_template",
           "render_prompt", "encode_prompt", "end_of_turn_text", "end_of_turn_id",
           "has_generation_markers", "render_spans", "TemplateError", "TemplateRenderError"]

_WARNED: set = set()
_PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "PROBE-1"},
          {"role": "user", "content": "And?"}, {"role": "assistant", "content": "PROBE-2"}]


def builtin_names() -> list[str]:
    files = resources.files("lmforge.data").joinpath("templates")
    return sorted(p.name[:-6] for p in files.iterdir() if p.name.endswith(".jinja"))


def builtin_template(name: str) -> str:
    names = builtin_names()
    if name not in names:
        close = difflib.get_close_matches(name, names + ["auto"], n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"model.template: unknown template '{name}'{hint} (choose auto, "
                          f"{', '.join(names)}, or a path to a .jinja file)")
    return resources.files("lmforge.data").joinpath("templates", f"{name}.jinja").read_text()


def resolve_template(name: str, tokenizer, default_system: str = "keep") -> str:
    """The Jinja source to render conversations with; ``default_system="drop"``
    (``data.template_system``): without the system turn it adds to conversations that have
    none (``template_system.py``)."""
    template = _resolve(name, tokenizer)
    if default_system == "drop":
        from lmforge.data.template_system import without_default_system

        return without_default_system(template, tokenizer)
    return template


def _resolve(name: str, tokenizer) -> str:
    if name.endswith(".jinja") and Path(name).is_file():
        try:
            return Path(name).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"model.template: {name} is not valid UTF-8 ({exc.reason} at byte "
                              f"{exc.start})") from None
    if name != "auto":
        return builtin_template(name)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        raise ConfigError("model.template: 'auto' but the tokenizer has no chat template (a base "
                          f"model?); choose a built-in one: {', '.join(builtin_names())}",
                          hint="e.g. model.template: chatml (or alpaca / plain for base models)")
    return template


def check_template(template: str, tokenizer) -> None:
    """Fail early, with a clear message, if the template cannot mark assistant text."""
    for probe in (_PROBE, _PROBE[:2]):
        try:
            text, spans = render_spans(probe, template, tokenizer)
        except TemplateRenderError as exc:
            last = exc
            continue
        n = sum(m["role"] == "assistant" for m in probe)
        if len(spans) != n or any("PROBE" not in text[s:e] for s, e in spans):
            raise TemplateError(f"model.template: the template marks {len(spans)} assistant "
                                f"span(s) in a conversation with {n} assistant turns",
                                hint="its {% generation %} blocks must wrap each assistant "
                                "message; or choose a built-in template")
        _warn_without_end(text, spans, tokenizer)
        return
    raise TemplateError(f"model.template: the template cannot render a plain user/assistant "
                        f"conversation ({last})", hint="choose a built-in template")


def _warn_without_end(text: str, spans, tokenizer) -> None:
    from lmforge.data.render import special_strings

    specials = special_strings(tokenizer)
    s, e = spans[-1]
    if not any(sp in text[s:e] for sp in specials):
        log.warning("the chat template ends assistant turns with no special token (EOS or an "
                    "end-of-turn token), so the model is not taught to stop: %r", text[s:e])


def render_prompt(messages: list[dict], template: str, tokenizer, tools=None) -> str:
    """The text a model is given at inference: ``messages`` + the assistant header (``tools``:
    the JSON schemas a tool-calling template lists)."""
    return render_text(list(messages), template, tokenizer, add_generation_prompt=True,
                       tools=tools)


def encode_prompt(messages: list[dict], template: str, tokenizer, tools=None) -> list[int]:
    """Token ids of ``render_prompt`` (no extra special tokens: the template has them)."""
    text = render_prompt(messages, template, tokenizer, tools)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def end_of_turn_text(template: str, tokenizer) -> str:
    """The text that ends an assistant turn in ``template`` (e.g. '<|im_end|>', eos)."""
    content = "PROBE-END"
    text, spans = render_spans([{"role": "user", "content": "Hi"},
                                {"role": "assistant", "content": content}], template, tokenizer)
    eos = getattr(tokenizer, "eos_token", None) or ""
    if not spans:
        return eos
    s, e = spans[-1]
    tail = text[s:e]
    tail = tail[tail.rfind(content) + len(content):] if content in tail else ""
    return tail.strip() or eos


def end_of_turn_id(template: str, tokenizer) -> int | None:
    """The token id generation stops at: the template's end-of-turn token when it is one token
    of this tokenizer, else the tokenizer's EOS (a warning says the two differ)."""
    text = end_of_turn_text(template, tokenizer)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
    if len(ids) == 1:
        return ids[0]
    if text and (text, tokenizer.eos_token) not in _WARNED:
        _WARNED.add((text, tokenizer.eos_token))
        log.warning("the template's end-of-turn '%s' is %d tokens in this tokenizer, not one; "
                    "generation stops at EOS instead", text, len(ids))
    return tokenizer.eos_token_id
