"""One round of the encoder (``encode.py``), fed chunk by chunk: render, then tokenize and label.

Conversations arrive as an iterable of lists (a list, or chunks read from a file while the
earlier ones are tokenized: ``pipeline.build``). They are cut again into pieces of ``CHUNK``, so
what is rendered, sampled and checked does not depend on how the caller chunked them. For each
piece the main thread renders (``skeleton.BatchRender``) and hands the texts and their trained
spans to the worker threads (``batch_tokenize.TokenStream``), which tokenize and label them; so
reading and rendering run beside the Rust tokenizer instead of before or after it, and the main
thread is free while the last pieces are tokenized.

Fallbacks keep the output exact: a disagreement of the rendering shortcut renders every
conversation of the round again with Jinja; a sampled text whose Rust ids/offsets differ from the
tokenizer's own call tokenizes and labels every text of the round by that call; a sampled text
with offsets out of order labels every text by a linear scan (``batch_tokenize``).
"""

from __future__ import annotations

from typing import Iterable, Iterator

from lmforge.data.batch_tokenize import CHUNK, TokenStream
from lmforge.data.ragged import Rows
from lmforge.data.skeleton import BatchRender, Renderer


def pieces(chunks: Iterable[list], size: int = CHUNK) -> Iterator[list]:
    """The items of ``chunks`` again, in lists of ``size`` (the last one shorter)."""
    buf: list = []
    for chunk in chunks:
        buf += chunk
        if len(buf) >= size:
            full = len(buf) - len(buf) % size
            for lo in range(0, full, size):
                yield buf[lo:lo + size]
            buf = buf[full:]
    if buf:
        yield buf


class Round:
    """Render, tokenize and label conversations fed piece by piece (``feed``); ``finish`` gives
    (rendered: (text, spans) or the row's error, way: how each was rendered, Rows of the good
    ones in order, split: per good one the first token of its last assistant turn). ``convs``
    holds every conversation fed. ``shortcut``: the skeleton renderer (None: Jinja only);
    ``threads``: of the Rust tokenizer (0: the tokenizer's own call); ``chunk``: the size of the
    pieces rendered again after a disagreement."""

    def __init__(self, tokenizer, template: str, train_on: str, shortcut: Renderer | None,
                 threads: int, chunk: int = CHUNK):
        self.tokenizer, self.template, self.chunk = tokenizer, template, chunk
        self.batch = BatchRender(template, tokenizer, shortcut)
        self.stream = TokenStream(tokenizer, threads, train_on)
        self.convs: list = []
        self.rendered: list = []
        self.way: list[str] = []

    @property
    def shortcut(self) -> Renderer | None:
        return self.batch.shortcut

    def feed(self, convs: list) -> None:
        self.convs += convs
        part, way = self.batch.render(convs)
        if self.batch.disagreed:  # everything of the round again, with Jinja
            self.stream.restart()
            self.batch = BatchRender(self.template, self.tokenizer, None)
            self.rendered, self.way = [], []
            for lo in range(0, len(self.convs), self.chunk):
                self._add(*self.batch.render(self.convs[lo:lo + self.chunk]))
        else:
            self._add(part, way)

    def _add(self, part: list, way: list[str]) -> None:
        good = [r for r in part if not isinstance(r, Exception)]
        self.rendered += part
        self.way += way
        self.stream.submit([r[0] for r in good], [r[1] for r in good])

    def finish(self) -> tuple[list, list[str], Rows, object]:
        try:
            rows, split = self.stream.result()
        finally:
            self.stream.close()
        return self.rendered, self.way, rows, split

    def close(self) -> None:
        self.stream.close()
