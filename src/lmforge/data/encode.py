"""Conversations -> ``input_ids`` + ``labels``, each from ONE tokenization of its rendered text.

One batch-native encoder: ``encode_conversations(convs, tokenizer, template, settings)``;
``encode_conversation`` is the batch of one. The steps, for the whole batch at once:

1. Render every conversation with the chat template and get the character span of every
   assistant turn (``render.py``). Batches of ``MIN_BATCH`` or more take the skeleton shortcut
   (``skeleton.py``: ~3x faster than Jinja on the preprocessing benchmark) where it is exact; the
   first conversation of every shape and every ``VERIFY_EVERY``-th one are also rendered by Jinja,
   and one difference sends the whole batch through Jinja.
2. Tokenize the texts chunk by chunk with the Rust tokenizer on worker threads while the next
   chunk is read and rendered and the earlier ones labelled (``encode_chunks.py``,
   ``batch_tokenize.py``: the same ids and offsets as the tokenizer's own call, checked on the
   same sample; one difference and the whole batch takes the tokenizer's call).
3. A token is trained when its characters overlap a trained span (the rule
   ``return_assistant_tokens_mask`` uses), so the end-of-turn token inside the span is trained
   too; found by binary search over the offsets (a linear scan where a tokenizer's offsets are not
   ordered). Never tokenize the prompt separately and count tokens: BPE merges across the seam
   would shift it. Labels are final before any padding, and nothing masks a token by its id, so a
   pad == eos tokenizer keeps EOS trained.

Length limits (``data.max_length``, ``max_source_length``, ``max_target_length``): the *target* is
the last assistant turn (from its first token to the end), the *source* everything before it.
Over-long sources lose whole earlier turns first (the conversation is encoded again without the
oldest exchange, in the next round of the batch), then tokens from the left.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable

from lmforge.config.constants import IGNORE_INDEX as IGNORE
from lmforge.data.batch_tokenize import CHUNK, usable_cpus
from lmforge.data.encode_chunks import Round, pieces
from lmforge.data.render import render_spans
from lmforge.data.skeleton import Renderer
from lmforge.data.types import Conversation, Text

MIN_BATCH = 16  # below this the shortcuts are not taken (a batch of one is the reference path)
_START, _END = itemgetter(0), itemgetter(1)


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
    """For each token, the index of the span its characters overlap, or -1 (linear scan)."""
    owners, j = [], 0
    for start, end in offsets:
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        inside = j < len(spans) and start < spans[j][1] and end > spans[j][0]
        owners.append(j if inside else -1)
    return owners


@dataclass
class _Tokens:
    ids: list[int]
    labels: list[int]
    split: int  # first token of the last assistant turn (source | target boundary)


def _ranges(offsets, spans, ordered: bool) -> list[tuple[int, int]]:
    """[first, last + 1) token range of each span: the tokens whose characters overlap it."""
    if ordered:  # tokens overlapping [s, e): end > s and start < e; lo= keeps them in order
        out, b = [], 0
        right, left = bisect.bisect_right, bisect.bisect_left
        for s, e in spans:
            a = right(offsets, s, b, key=_END)
            b = left(offsets, e, a, key=_START)
            out.append((a, b))
        return out
    owners = token_owners(offsets, spans)
    found = {}
    for i, o in enumerate(owners):
        if o >= 0:
            found[o] = (found.get(o, (i, i))[0], i + 1)
    return [found.get(j, (0, 0)) for j in range(len(spans))]


def _labels(ids: list[int], offsets, spans, train_on: str, ordered: bool) -> _Tokens:
    ids = ids if isinstance(ids, list) else list(ids)
    n = len(ids)
    if not n:
        return _Tokens([], [], 0)
    ranges = _ranges(offsets, spans, ordered)
    if train_on == "all":
        labels = list(ids)
    else:
        labels = [IGNORE] * n
        for a, b in (ranges[-1:] if train_on == "last_assistant" else ranges):
            labels[a:b] = ids[a:b]
    split = ranges[-1][0] if ranges and ranges[-1][1] > ranges[-1][0] else n
    return _Tokens(ids, labels, split)


def _drop_first_exchange(messages) -> list[dict] | None:
    """The conversation without its oldest user/assistant pair, or None if only one is left."""
    messages = list(messages)
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


def _finish(t: _Tokens, s: Settings, truncated: bool) -> Encoded:
    src, tgt, dropped = _limits(t, s)
    if dropped:
        return Encoded(t.ids, t.labels, truncated=True, dropped=True)
    lo, hi = t.split - src, t.split + tgt
    if lo == 0 and hi == len(t.ids):  # nothing cut: no copies
        return Encoded(t.ids, t.labels, truncated)
    truncated = truncated or lo > 0 or hi < len(t.ids)
    return Encoded(t.ids[lo:hi], t.labels[lo:hi], truncated)


def encode_conversations(convs: list[Conversation] | Iterable[list[Conversation]], tokenizer,
                         template: str, settings: Settings | str = "all_assistant", *,
                         errors: str = "raise", paths: list | None = None,
                         threads: int | None = None) -> list:
    """One ``Encoded`` per conversation, in order. ``convs``: a list, or an iterator of lists
    (chunks, e.g. read from a file while the earlier ones are tokenized; the same output). A
    conversation the template fails to render (``TemplateRenderError``) or cannot locate the
    assistant text of (``TemplateError``) raises (``errors="raise"``, once every chunk is read)
    or leaves the error in its place (``errors="return"``). ``paths`` (a list) receives how each
    was rendered: ``"skeleton"`` or ``"template"``. ``threads``: worker threads of the Rust
    tokenizer (default: the usable CPUs; 0: the tokenizer's own call)."""
    if isinstance(settings, str):  # encode_conversations(convs, tok, template, "last_assistant")
        settings = Settings(train_on=settings)
    threads = usable_cpus() if threads is None else threads
    chunks = pieces([convs] if isinstance(convs, list) else convs, CHUNK)
    head, seen = [], 0  # pieces up to MIN_BATCH conversations (or all) tell the batch's size
    for piece in chunks:
        head.append(piece)
        seen += len(piece)
        if seen >= MIN_BATCH:
            break
    big = seen >= MIN_BATCH
    shortcut = Renderer(template, tokenizer) if big else None
    rnd = Round(tokenizer, template, settings.train_on, shortcut, threads if big else 0,
                _labels, CHUNK)
    try:
        for piece in head:
            rnd.feed(piece)
        for piece in chunks:
            rnd.feed(piece)
    except BaseException:  # e.g. a bad row of the file being read: stop the threads
        rnd.close()
        raise
    current = rnd.convs
    n = len(current)
    out: list = [None] * n
    how = ["template"] * n
    truncated = [False] * n
    todo = list(range(n))
    while True:  # a later round encodes the conversations that lost their oldest exchange
        rendered, way, tokens = rnd.finish()
        shortcut = rnd.shortcut
        good = [k for k, r in enumerate(rendered) if not isinstance(r, Exception)]
        bad = [k for k in range(len(todo)) if isinstance(rendered[k], Exception)]
        if bad and errors == "raise":
            raise rendered[bad[0]]
        again = []
        for t, k in zip(tokens, good):
            i = todo[k]
            if _source_too_long(t, settings):
                shorter = _drop_first_exchange(current[i].messages)
                if shorter is not None:
                    current[i] = dataclasses.replace(current[i], messages=tuple(shorter))
                    truncated[i] = True
                    again.append(i)
                    continue
            out[i], how[i] = _finish(t, settings, truncated[i]), way[k]
        for k in bad:
            out[todo[k]] = rendered[k]
        todo = again
        if not todo:
            break
        big = len(todo) >= MIN_BATCH
        rnd = Round(tokenizer, template, settings.train_on, shortcut, threads if big else 0,
                    _labels, CHUNK)
        for piece in pieces([[current[i] for i in todo]], CHUNK):
            rnd.feed(piece)
    if paths is not None:
        paths.extend(how)
    return out


def encode_conversation(conv: Conversation, tokenizer, template: str,
                        settings: Settings | str = "all_assistant") -> Encoded:
    """The batch of one."""
    return encode_conversations([conv], tokenizer, template, settings)[0]


def encode_texts(examples: list[Text], tokenizer, settings: Settings) -> list[list[Encoded]]:
    """Pretraining texts: their tokens (+ EOS), labels = ids, split into max_length chunks (one
    batch call of the tokenizer)."""
    if not examples:
        return []
    out, eos = [], tokenizer.eos_token_id
    for ids in tokenizer([ex.text for ex in examples])["input_ids"]:
        ids = list(ids)
        if settings.add_eos and eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
        size = settings.max_length or len(ids) or 1
        chunks = [ids[i:i + size] for i in range(0, len(ids), size)]
        if len(chunks) > 1 and len(chunks[-1]) < 2:  # a 1-token tail trains nothing
            chunks.pop()
        out.append([Encoded(c, list(c)) for c in chunks])
    return out


def encode_text(example: Text, tokenizer, settings: Settings) -> list[Encoded]:
    """The batch of one."""
    return encode_texts([example], tokenizer, settings)[0]
