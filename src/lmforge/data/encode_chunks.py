"""One round of the encoder (``encode.py``), fed chunk by chunk: render, tokenize, label.

Conversations arrive as an iterable of lists (a list, or chunks read from a file while the
earlier ones are tokenized: ``pipeline.build``). They are cut again into pieces of ``CHUNK``, so
what is rendered, sampled and checked does not depend on how the caller chunked them. For each
piece the main thread renders (``skeleton.BatchRender``) and hands the texts to the tokenizer
threads (``batch_tokenize.TokenStream``), then labels every earlier piece whose tokens are ready;
so reading, rendering and labelling run beside the Rust tokenizer instead of before or after it.

Fallbacks keep the output exact: a disagreement of the rendering shortcut renders every
conversation of the round again with Jinja; a sampled text whose Rust ids/offsets differ from the
tokenizer's own call (``Differs``, checked once all are tokenized) tokenizes and labels every
text of the round by that call; a sampled text with offsets out of order labels every text by a
linear scan.

The labelling rule itself is the encoder's (``encode._labels``), passed in as ``label``.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator

from lmforge.data.batch_tokenize import CHUNK, Differs, TokenStream
from lmforge.data.skeleton import BatchRender, Renderer

log = logging.getLogger("lmforge.data.encode")  # the encoder's log


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
    (rendered: (text, spans) or the row's error, way: how each was rendered, tokens of the good
    ones, in order). ``convs`` holds every conversation fed. ``shortcut``: the skeleton renderer
    (None: Jinja only); ``threads``: of the Rust tokenizer (0: the tokenizer's own call);
    ``label(ids, offsets, spans, train_on, ordered)``: the labels of one text; ``chunk``: the
    size of the pieces rendered again after a disagreement."""

    def __init__(self, tokenizer, template: str, train_on: str, shortcut: Renderer | None,
                 threads: int, label: Callable, chunk: int = CHUNK):
        self.tokenizer, self.template, self.train_on = tokenizer, template, train_on
        self.label, self.chunk = label, chunk
        self.batch = BatchRender(template, tokenizer, shortcut)
        self.stream = TokenStream(tokenizer, threads)
        self.convs: list = []
        self.rendered: list = []
        self.way: list[str] = []
        self.spans: list = []  # of the good renders, in order
        self.tokens: list = []  # of the labelled chunks
        self.labelled = 0  # chunks labelled
        self.fallback = ""  # "differs" or "unordered": everything is labelled at the end

    @property
    def shortcut(self) -> Renderer | None:
        return self.batch.shortcut

    def feed(self, convs: list) -> None:
        self.convs += convs
        part, way = self.batch.render(convs)
        if self.batch.disagreed:  # everything of the round again, with Jinja
            self.stream.restart()
            self.batch = BatchRender(self.template, self.tokenizer, None)
            self.rendered, self.way, self.spans, self.tokens, self.labelled = [], [], [], [], 0
            self.fallback = ""
            for lo in range(0, len(self.convs), self.chunk):
                self._add(*self.batch.render(self.convs[lo:lo + self.chunk]))
        else:
            self._add(part, way)
        self._label(wait=False)

    def _add(self, part: list, way: list[str]) -> None:
        good = [r for r in part if not isinstance(r, Exception)]
        self.rendered += part
        self.way += way
        self.spans += [r[1] for r in good]
        self.stream.submit([r[0] for r in good])

    def _label(self, wait: bool) -> None:
        """Label the chunks whose tokens are ready (all of them with ``wait``), in order."""
        stream, spans, train_on, label = self.stream, self.spans, self.train_on, self.label
        while not self.fallback and self.labelled < len(stream.parts) and \
                (wait or stream.done(self.labelled)):
            ids, offsets = stream.take(self.labelled)
            if not stream.ordered:
                self.fallback = "unordered"
                return
            at = len(self.tokens)
            self.tokens += [label(a, b, spans[at + j], train_on, True)
                            for j, (a, b) in enumerate(zip(ids, offsets))]
            self.labelled += 1

    def finish(self) -> tuple[list, list[str], list]:
        try:
            self._label(wait=True)
            if not self.fallback:
                try:
                    self.stream.verify()
                except Differs:
                    self.fallback = "differs"
            if self.fallback:
                self.tokens = self._relabel()
        finally:
            self.stream.close()
        return self.rendered, self.way, self.tokens

    def _relabel(self) -> list:
        stream = self.stream
        try:
            if self.fallback == "differs":
                raise Differs()
            ids, offsets = stream.everything()  # a sampled text's offsets are out of order
        except Differs:
            log.info("the Rust tokenizer alone differs from the tokenizer's call; using the "
                     "latter")
            ids, offsets = stream.by_reference()
        return [self.label(a, b, s, self.train_on, stream.ordered)
                for a, b, s in zip(ids, offsets, self.spans)]

    def close(self) -> None:
        self.stream.close()
