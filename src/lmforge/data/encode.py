"""Conversations -> ``input_ids`` + ``labels``, each from ONE tokenization of its rendered text.

One batch-native encoder: ``encode_conversations(convs, tokenizer, template, settings)``;
``encode_conversation`` is the batch of one. The steps, for the whole batch at once:

1. Render every conversation with the chat template and get the character span of every
   assistant turn (``render.py``). Batches of ``MIN_BATCH`` or more take the skeleton shortcut
   (``skeleton.py``: ~3x faster than Jinja on the preprocessing benchmark) where it is exact; the
   first conversation of every shape and every ``VERIFY_EVERY``-th one are also rendered by Jinja,
   and one difference sends the whole batch through Jinja.
2. Tokenize and label the texts chunk by chunk with the Rust tokenizer on worker threads while
   the next chunk is read and rendered (``encode_chunks.py``, ``batch_tokenize.py``: the same ids
   and offsets as the tokenizer's own call, checked on the same sample; one difference and the
   whole batch takes the tokenizer's call).
3. A token is trained when its characters overlap a trained span (``labels.py``: the rule
   ``return_assistant_tokens_mask`` uses), so the end-of-turn token inside the span is trained
   too. Never tokenize the prompt separately and count tokens: BPE merges across the seam would
   shift it. The rows are ragged arrays (``ragged.Rows``) from there on: ``encode_rows`` gives
   them with their flags (what the pipeline stores), ``encode_conversations`` as ``Encoded``
   lists.

Length limits (``data.max_length``, ``max_source_length``, ``max_target_length``): the *target* is
the last assistant turn (from its first token to the end), the *source* everything before it.
Over-long sources lose whole earlier turns first (the conversation is encoded again without the
oldest exchange, in the next round of the batch), then tokens from the left (``limits``, on
arrays: the rule preference data is fitted by too).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from lmforge.config.constants import IGNORE_INDEX as IGNORE  # noqa: F401 - re-exported
from lmforge.data.batch_tokenize import CHUNK, usable_cpus
from lmforge.data.encode_chunks import Round, pieces
from lmforge.data.ragged import Rows
from lmforge.data.render import render_spans
from lmforge.data.skeleton import Renderer
from lmforge.data.types import Conversation, Text

MIN_BATCH = 16  # below this the shortcuts are not taken (a batch of one is the reference path)


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


@dataclass
class Batch:
    """What the encoder makes of a batch: a row per example that encoded, in input order
    (``owner``: its example), with its flags; the other examples' errors by index; how each
    example was rendered (``"skeleton"`` or ``"template"``)."""

    rows: Rows
    owner: np.ndarray  # int64 per row, ascending
    truncated: np.ndarray  # bool per row
    dropped: np.ndarray  # bool per row (over-long with data.truncation: drop; ids kept whole)
    errors: dict = field(default_factory=dict)
    how: list = field(default_factory=list)

    @classmethod
    def of(cls, encoded: list[list[Encoded] | Exception]) -> "Batch":
        """From per-example lists of Encoded rows (or errors)."""
        rows = [(k, e) for k, out in enumerate(encoded) if not isinstance(out, Exception)
                for e in out]
        return cls(Rows.from_lists([e.input_ids for _, e in rows], [e.labels for _, e in rows]),
                   np.array([k for k, _ in rows], dtype=np.int64),
                   np.array([e.truncated for _, e in rows], dtype=bool),
                   np.array([e.dropped for _, e in rows], dtype=bool),
                   {k: out for k, out in enumerate(encoded) if isinstance(out, Exception)})

    def encoded(self, n: int) -> list:
        """Per example (of ``n``, one row each at most): its Encoded, or its error."""
        out: list = [None] * n
        for k, exc in self.errors.items():
            out[k] = exc
        for r, k in enumerate(self.owner.tolist()):
            out[k] = Encoded(*self.rows.row(r), bool(self.truncated[r]), bool(self.dropped[r]))
        return out


def render(messages: list[dict], template: str, tokenizer,
           add_generation_prompt: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """Rendered text and the (start, end) character span of every assistant turn."""
    return render_spans(messages, template, tokenizer, add_generation_prompt)


def _drop_first_exchange(messages) -> list[dict] | None:
    """The conversation without its oldest user/assistant pair, or None if only one is left."""
    messages = list(messages)
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    body = messages[len(head):]
    if sum(m["role"] == "assistant" for m in body) <= 1:
        return None
    second_user = next((i for i, m in enumerate(body) if i > 0 and m["role"] == "user"), None)
    return head + body[second_user:] if second_user else None


def limits(split: np.ndarray, lengths: np.ndarray, s: Settings):
    """(source tokens, target tokens) to keep per example, and whether it is dropped whole;
    ``split``: the first token of the target (the last assistant turn)."""
    src, tgt = split.copy(), lengths - split
    if s.max_source_length:
        src = np.minimum(src, s.max_source_length)
    if s.max_target_length:
        tgt = np.minimum(tgt, s.max_target_length)
    limit = s.max_length
    over = src + tgt > limit if limit else np.zeros(len(src), dtype=bool)
    if s.truncation == "drop":
        return src, tgt, over
    if not over.any():
        return src, tgt, over
    if s.truncation == "truncate_response":
        keep_src, keep_tgt = np.minimum(src, limit), np.maximum(0, limit - src)
    else:  # the prompt keeps at least a quarter
        keep_src = np.maximum(limit - tgt, np.minimum(src, limit // 4))
        keep_tgt = limit - keep_src
    return np.where(over, keep_src, src), np.where(over, keep_tgt, tgt), np.zeros_like(over)


def _source_too_long(split: np.ndarray, lengths: np.ndarray, s: Settings) -> np.ndarray:
    out = np.zeros(len(split), dtype=bool)
    if s.max_source_length:
        out |= split > s.max_source_length
    if s.truncation == "truncate_prompt" and s.max_length:
        out |= lengths > s.max_length
    return out


def _finish(rows: Rows, split: np.ndarray, s: Settings, truncated: np.ndarray):
    """(rows cut to the limits, truncated, dropped): a dropped row keeps its tokens."""
    lengths = rows.lengths()
    src, tgt, dropped = limits(split, lengths, s)
    lo = np.where(dropped, 0, split - src)
    hi = np.where(dropped, lengths, split + tgt)
    return rows.cut(lo, hi), truncated | dropped | (lo > 0) | (hi < lengths), dropped


def encode_rows(convs: list[Conversation] | Iterable[list[Conversation]], tokenizer,
                 template: str, settings: Settings, *, errors: str = "raise",
                 threads: int | None = None) -> Batch:
    """``encode_conversations`` as a ``Batch`` (one row per conversation that encoded)."""
    # one chunk more in flight than cores: the Rust tokenizer keeps a batch while the workers
    # wait for the GIL to label theirs (measured on 2 cores: the time with none queued halves)
    threads = usable_cpus() + 1 if threads is None else threads
    chunks = pieces([convs] if isinstance(convs, list) else convs, CHUNK)
    head, seen = [], 0  # pieces up to MIN_BATCH conversations (or all) tell the batch's size
    for piece in chunks:
        head.append(piece)
        seen += len(piece)
        if seen >= MIN_BATCH:
            break
    big = seen >= MIN_BATCH
    shortcut = Renderer(template, tokenizer) if big else None
    rnd = Round(tokenizer, template, settings.train_on, shortcut, threads if big else 0, CHUNK)
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
    how = ["template"] * n
    truncated = np.zeros(n, dtype=bool)
    failed: dict = {}
    parts: list = []  # (owners, rows, truncated, dropped) of each round
    todo = np.arange(n)
    while True:  # a later round encodes the conversations that lost their oldest exchange
        rendered, way, rows, split = rnd.finish()
        shortcut = rnd.shortcut
        good = np.array([k for k, r in enumerate(rendered) if not isinstance(r, Exception)],
                        dtype=np.int64)
        bad = [k for k, r in enumerate(rendered) if isinstance(r, Exception)]
        if bad and errors == "raise":
            raise rendered[bad[0]]
        failed.update({int(todo[k]): rendered[k] for k in bad})
        owners = todo[good]
        keep = np.ones(len(good), dtype=bool)
        again = []
        for j in np.flatnonzero(_source_too_long(split, rows.lengths(), settings)).tolist():
            i = int(owners[j])
            shorter = _drop_first_exchange(current[i].messages)
            if shorter is not None:
                current[i] = dataclasses.replace(current[i], messages=tuple(shorter))
                truncated[i], keep[j] = True, False
                again.append(i)
        if not keep.all():
            rows, split, owners = rows.take(np.flatnonzero(keep)), split[keep], owners[keep]
        parts.append((owners, *_finish(rows, split, settings, truncated[owners])))
        for k, i in zip(good[keep].tolist(), owners.tolist()):
            how[i] = way[k]
        todo = np.array(again, dtype=np.int64)
        if not len(todo):
            break
        big = len(todo) >= MIN_BATCH
        rnd = Round(tokenizer, template, settings.train_on, shortcut, threads if big else 0,
                    CHUNK)
        for piece in pieces([[current[i] for i in todo.tolist()]], CHUNK):
            rnd.feed(piece)
    owner = np.concatenate([p[0] for p in parts])
    order = np.argsort(owner, kind="stable")
    return Batch(Rows.concat([p[1] for p in parts]).take(order), owner[order],
                 np.concatenate([p[2] for p in parts])[order],
                 np.concatenate([p[3] for p in parts])[order], failed, how)


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
    tokenizer (default: one more than the usable CPUs; 0: the tokenizer's own call)."""
    if isinstance(settings, str):  # encode_conversations(convs, tok, template, "last_assistant")
        settings = Settings(train_on=settings)
    batch = encode_rows(convs, tokenizer, template, settings, errors=errors, threads=threads)
    if paths is not None:
        paths.extend(batch.how)
    return batch.encoded(len(batch.how))


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
