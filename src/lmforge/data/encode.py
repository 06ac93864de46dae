"""Conversation -> ``input_ids`` + ``labels`` from ONE tokenization of the rendered text.

The assistant spans are character ranges reported by the template (``render.py``); a token is
trained when its characters overlap a trained span (the rule ``return_assistant_tokens_mask``
uses), so the end-of-turn token inside the span is trained too. Never tokenize the prompt
separately and count tokens: BPE merges across the seam would shift it. Labels are final before
any padding, and nothing masks a token by its id, so a pad == eos tokenizer keeps EOS trained.

Length limits (``data.max_length``, ``max_source_length``, ``max_target_length``): the *target* is
the last assistant turn (from its first token to the end), the *source* everything before it.
Over-long sources lose whole earlier turns first (the conversation is re-rendered without the
oldest exchange), then tokens from the left.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config.constants import IGNORE_INDEX as IGNORE
from lmforge.data.render import render_spans
from lmforge.data.types import Conversation, Text


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    dropped: bool = False  # over-long with data.truncation: drop

    def row(self) -> dict:
        return {"input_ids": self.input_ids, "labels": self.labels}


@dataclass(frozen=True)
class Settings:
    max_length: int | None = None
    truncation: str = "truncate_prompt"
    max_source_length: int | None = None
    max_target_length: int | None = None
    train_on: str = "all_assistant"
    add_eos: bool = True

    @classmethod
    def from_config(cls, cfg) -> "Settings":
        d = cfg.data
        pt = cfg.stage == "pt"
        add_eos = getattr(cfg.method(), "add_eos", True) if pt else True
        return cls(d.max_length, d.truncation, d.max_source_length, d.max_target_length,
                   "all" if pt else d.train_on, add_eos)


def render(messages: list[dict], template: str, tokenizer,
           add_generation_prompt: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text and the (start, end) character span of every assistant turn."""
    return render_spans(messages, template, tokenizer, add_generation_prompt)


def token_owners(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """For each token, the index of the span its characters overlap, or -1."""
    owners, j = [], 0
    for start, end in offsets:
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        inside = j < len(spans) and start < spans[j][1] and end > spans[j][0]
        owners.append(j if inside else -1)
    return owners


def labels_for(ids: list[int], owners: list[int], n_spans: int, train_on: str) -> list[int]:
    if train_on == "all":
        return list(ids)
    keep = (lambda o: o >= 0) if train_on == "all_assistant" else (lambda o: o == n_spans - 1)
    return [t if n_spans and keep(o) else IGNORE for t, o in zip(ids, owners)]


@dataclass
class _Tokens:
    ids: list[int]
    labels: list[int]
    split: int  # first token of the last assistant turn (source | target boundary)


def _tokenize(messages: list[dict], template: str, tokenizer, train_on: str) -> _Tokens:
    text, spans = render_spans(messages, template, tokenizer)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    owners = token_owners(enc["offset_mapping"], spans)
    last = len(spans) - 1
    split = next((i for i, o in enumerate(owners) if o == last and last >= 0), len(ids))
    return _Tokens(ids, labels_for(ids, owners, len(spans), train_on), split)


def _drop_first_exchange(messages: list[dict]) -> list[dict] | None:
    """The conversation without its oldest user/assistant pair, or None if only one is left."""
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    body = messages[len(head):]
    if sum(m["role"] == "assistant" for m in body) <= 1:
        return None
    second_user = next((i for i, m in enumerate(body) if i > 0 and m["role"] == "user"), None)
    return head + body[second_user:] if second_user else None


def _limits(t: _Tokens, s: Settings) -> tuple[int, int, bool]:
    """(source tokens, target tokens) to keep, and whether the whole example is dropped."""
    src, tgt = t.split, len(t.ids) - t.split
    if s.max_source_length:
        src = min(src, s.max_source_length)
    if s.max_target_length:
        tgt = min(tgt, s.max_target_length)
    limit = s.max_length
    if not limit or src + tgt <= limit:
        return src, tgt, False
    if s.truncation == "drop":
        return src, tgt, True
    if s.truncation == "truncate_response":
        return min(src, limit), max(0, limit - src), False
    keep_src = max(limit - tgt, min(src, limit // 4))  # the prompt keeps at least a quarter
    return keep_src, limit - keep_src, False


def _source_too_long(t: _Tokens, s: Settings) -> bool:
    if s.max_source_length and t.split > s.max_source_length:
        return True
    return bool(s.truncation == "truncate_prompt" and s.max_length and len(t.ids) > s.max_length)


def encode_conversation(conv: Conversation, tokenizer, template: str,
                        settings: Settings | str = "all_assistant") -> Encoded:
    if isinstance(settings, str):  # encode_conversation(conv, tok, template, "last_assistant")
        settings = Settings(train_on=settings)
    messages = conv.as_list()
    t = _tokenize(messages, template, tokenizer, settings.train_on)
    truncated = False
    while _source_too_long(t, settings):
        shorter = _drop_first_exchange(messages)
        if shorter is None:
            break
        messages, truncated = shorter, True
        t = _tokenize(messages, template, tokenizer, settings.train_on)
    src, tgt, dropped = _limits(t, settings)
    if dropped:
        return Encoded(t.ids, t.labels, truncated=True, dropped=True)
    lo, hi = t.split - src, t.split + tgt
    truncated = truncated or lo > 0 or hi < len(t.ids)
    return Encoded(t.ids[lo:hi], t.labels[lo:hi], truncated)


def encode_text(example: Text, tokenizer, settings: Settings) -> list[Encoded]:
    """Pretraining text: its tokens (+ EOS), labels = ids, split into max_length chunks."""
    ids = list(tokenizer(example.text)["input_ids"])
    eos = tokenizer.eos_token_id
    if settings.add_eos and eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    size = settings.max_length or len(ids) or 1
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)]
    if len(chunks) > 1 and len(chunks[-1]) < 2:  # a 1-token tail trains nothing
        chunks.pop()
    return [Encoded(c, list(c)) for c in chunks]
