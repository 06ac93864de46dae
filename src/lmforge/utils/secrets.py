"""Keep API keys and tokens out of what lmforge writes: log lines, the resolved config in the run
directory (``lmforge_config.yaml``), ``env.json`` (argv) and ``training_args.json``.

Two rules, applied together:
- by *name*: a mapping key or a command-line flag that looks like a credential (``api_key``,
  ``hub_token``, ``--api-key``, ``password``, ``authorization`` ...) has its value replaced;
- by *shape*: a string that looks like a known token (``hf_...``, ``sk-...``, ``ghp_...``,
  ``AKIA...``, ``xox.-...``, a ``Bearer`` header, ``user:password@`` in a URL) is masked wherever
  it appears, whatever key or message holds it.

``RedactingFilter`` applies the shape rule to every log record (``utils/logs.setup`` installs it
on the handler). Nothing here can prove a string is *not* a secret; the patterns are the common
providers' formats and the test in tests/unit/test_safety_secrets.py pins them.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"

# names whose values are credentials ("tokenizer"/"max_tokens" are not: whole-word rules)
_NAME = re.compile(r"(?:^|[_\-.])(api[_\-]?key|apikey|token|auth[_\-]?token|access[_\-]?token|"
                   r"secret|secret[_\-]?key|password|passwd|authorization|credentials?|"
                   r"private[_\-]?key)$", re.I)
_NOT_SECRET = re.compile(r"(pad|eos|bos|unk|sep|cls|mask|special|max|num|new)[_\-]?tokens?$|"
                         r"token(s|izer|_id|_ids|_env|_file)?[_\-]?(id|ids|count|length|type)$|"
                         r"_env$", re.I)

_SHAPES = [
    re.compile(r"\bhf_[A-Za-z0-9]{20,}"),                          # Hugging Face
    re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}"),        # OpenAI / Anthropic
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),                   # GitHub
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}"),                    # GitLab
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),                  # AWS access key id
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),                # Slack
    re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),                     # Google API key
    re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),  # JWT
]
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)([A-Za-z0-9_\-.=+/]{12,})")
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)([^@\s/]+)(@)")
_ASSIGNMENT = re.compile(r"(?i)\b([A-Za-z0-9_\-.]*(?:api[_\-]?key|token|secret|password|passwd)"
                         r")(\s*[=:]\s*)(['\"]?)([^\s'\",;]{4,})")


def is_secret_name(name: str) -> bool:
    """``api_key``, ``hub_token``, ``--api-key``, ``WANDB_API_KEY`` ... (not ``pad_token``)."""
    bare = name.strip().lstrip("-")
    return bool(_NAME.search(bare)) and not _NOT_SECRET.search(bare)


def _assignment(m: re.Match) -> str:
    if not is_secret_name(m.group(1)):
        return m.group(0)
    return f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}"


def redact(text: str) -> str:
    """``text`` with every token-shaped substring and ``key=value`` credential masked."""
    if not isinstance(text, str) or not text:
        return text
    for pattern in _SHAPES:
        text = pattern.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    return _ASSIGNMENT.sub(_assignment, text)


def redact_tree(value: Any, key: str | None = None) -> Any:
    """A copy of a JSON/YAML-like tree with credential-named values and token-shaped strings
    masked (empty or None values stay as they are: they reveal nothing)."""
    if key is not None and is_secret_name(str(key)) and value not in (None, "", [], {}) \
            and not isinstance(value, (bool, int, float)):
        return MASK
    if isinstance(value, dict):
        return {k: redact_tree(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_tree(v) for v in value)
    if isinstance(value, str):
        return redact(value)
    return value


def redact_argv(argv: list[str]) -> list[str]:
    """Command-line arguments with ``--api-key VALUE`` / ``--token=VALUE`` / ``a.api_key=VALUE``
    values masked, and token-shaped arguments masked."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        name, sep, _ = arg.partition("=")
        if arg.startswith("-") and is_secret_name(name):
            out.append(f"{name}={MASK}" if sep else arg)
            hide_next = not sep
            continue
        if sep and is_secret_name(name.split(".")[-1]):
            out.append(f"{name}={MASK}")
            continue
        out.append(redact(arg))
    return out


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's final message (arguments merged in first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_filter(handler: logging.Handler) -> None:
    if not any(isinstance(f, RedactingFilter) for f in handler.filters):
        handler.addFilter(RedactingFilter())


def redact_yaml(text: str) -> str:
    """A YAML document with credentials masked (re-dumped only when something changed, so the
    usual file keeps its exact layout)."""
    import yaml

    tree = yaml.safe_load(text)
    clean = redact_tree(tree)
    if clean == tree:
        return text
    return yaml.safe_dump(clean, sort_keys=False, allow_unicode=True)
