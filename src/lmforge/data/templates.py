"""Chat templates: the tokenizer's own (``auto``) or a built-in ``.jinja`` file in ``templates/``.

Built-ins wrap assistant text in ``{% generation %}`` markers, so the trained spans are known from
the template itself (the same mechanism as ``return_assistant_tokens_mask``).
"""

from __future__ import annotations

import difflib
from importlib import resources

from lmforge.errors import ConfigError


def builtin_names() -> list[str]:
    files = resources.files("lmforge.data").joinpath("templates")
    return sorted(p.name[:-6] for p in files.iterdir() if p.name.endswith(".jinja"))


def builtin_template(name: str) -> str:
    names = builtin_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f" (built-ins: {', '.join(names)})"
        raise ConfigError(f"model.template: unknown template '{name}'{hint}")
    return resources.files("lmforge.data").joinpath("templates", f"{name}.jinja").read_text()


def resolve_template(name: str, tokenizer) -> str:
    """The Jinja source to render conversations with."""
    if name != "auto":
        return builtin_template(name)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        raise ConfigError("model.template: 'auto' but the tokenizer has no chat template; "
                          f"choose a built-in one ({', '.join(builtin_names())})")
    return template


def has_generation_markers(template: str) -> bool:
    import re

    return re.search(r"\{%-?\s*generation\s*-?%\}", template) is not None
