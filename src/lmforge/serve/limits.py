"""Bounds that keep one request from costing the server more than a prompt the model can take.

What held the memory: a 3 MiB prompt was tokenized in full (600k tokens, seconds of CPU) before
the context check refused it. The tokenizer's buffers are freed (``tracemalloc`` shows nothing
kept by Python), but glibc keeps the freed pages in the worker thread's malloc arena, so the
process kept ~220 MiB per such request, more with several at once. Two fixes:

- ``prompt_char_limit``: no token is longer than the longest string in the vocabulary, so a
  prompt of more than ``context x longest`` characters cannot fit the context whatever it says.
  Such a prompt gets its 400 (``context_length_exceeded``) before the template or the tokenizer
  runs; the request body itself is capped by ``--max-request-bytes`` (413) while it is read.
- ``release_memory``: ``malloc_trim(0)`` when the generation thread falls idle, handing freed
  pages back to the system (glibc only; a no-op elsewhere).
"""

from __future__ import annotations

from lmforge.serve.errors import APIError
from lmforge.utils.cpu_tuning import release_memory  # noqa: F401  (re-exported: scheduler)

DEFAULT_MAX_REQUEST_BYTES = 1 << 20  # 1 MiB: ~100k tokens of text, far over small contexts


def longest_token_chars(tokenizer) -> int:
    """Characters of the longest vocabulary entry (byte-level BPE: bytes), at least 1."""
    try:
        vocab = tokenizer.get_vocab()
    except (AttributeError, NotImplementedError, TypeError):
        return 64
    return max((len(t) for t in vocab), default=64) or 1


def prompt_char_limit(context: int, tokenizer) -> int:
    """More characters than this cannot fit ``context`` tokens (the check before tokenizing)."""
    return context * longest_token_chars(tokenizer)


def check_chars(size: int, limit: int, context: int, param: str) -> None:
    """400 for a prompt of ``size`` characters over ``limit`` (before any tokenizing)."""
    if size > limit:
        raise APIError(400, f"this model's maximum context length is {context} tokens; the "
                       f"prompt is {size} characters, more than {context} tokens can hold "
                       f"(limit {limit} characters), so it was not tokenized", param,
                       "context_length_exceeded")
