"""Encoding a whole split: example type -> batch encoder (``ENCODERS``, a static table), the rows
and counts the pipeline keeps, and forked workers for ``data.num_proc > 1``.

Every encoder takes a list of examples of its type and returns, per example, a list of
``Encoded`` rows (a text can give several chunks, an unused KTO row none) or the
``TemplateRenderError`` the chat template raised for it. Conversations (and the chosen /
desirable answers of preference / KTO data under stage sft) go through the one batch-native
encoder, ``encode.encode_conversations``.
"""

from __future__ import annotations

import multiprocessing
from typing import Callable, Iterable

from lmforge.data.batch_tokenize import usable_cpus
from lmforge.data.encode import IGNORE, Encoded, Settings, encode_conversations, encode_texts
from lmforge.data.preference import SFT_CONVERSATIONS, KTOExample, PreferenceExample
from lmforge.data.render import TemplateRenderError
from lmforge.data.sources import bad_row
from lmforge.data.types import Conversation, Text
from lmforge.errors import ConfigError

MIN_PER_WORKER = 256  # below this a forked worker costs more than it saves


def _conversations(examples: list, tokenizer, template, settings: Settings,
                   threads: int | None = None) -> list:
    rows = encode_conversations(examples, tokenizer, template, settings, errors="return",
                                threads=threads)
    return [[r] if isinstance(r, Encoded) else r for r in rows]


def _texts(examples: list, tokenizer, template, settings: Settings,
           threads: int | None = None) -> list:
    return encode_texts(examples, tokenizer, settings)


def _sft_answers(examples: list, tokenizer, template, settings: Settings,
                 threads: int | None = None) -> list:
    """Preference pairs and KTO rows under stage sft: the answer a model should imitate."""
    convs = [SFT_CONVERSATIONS[type(ex)](ex) for ex in examples]
    done = iter(_conversations([c for c in convs if c is not None], tokenizer, template,
                               settings, threads))
    return [next(done) if c is not None else [] for c in convs]


# example type -> encoder(examples, tokenizer, template, settings, threads) -> per example: rows
# or error (threads: of the Rust tokenizer, None for the usable CPUs)
ENCODERS: dict[type, Callable[..., list]] = {
    Conversation: _conversations,
    Text: _texts,
    PreferenceExample: _sft_answers,
    KTOExample: _sft_answers,
}


def _encode_all(examples: list, tokenizer, template, settings: Settings,
                threads: int | None = None) -> list:
    """Per example, in order: its rows or its error (each type encoded as one batch)."""
    groups: dict[type, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(type(ex), []).append(i)
    out: list = [None] * len(examples)
    for kind, where in groups.items():
        encode = ENCODERS.get(kind)
        if encode is None:
            raise ConfigError(f"data.format: {kind.__name__} examples cannot be encoded for "
                              "this stage")
        for i, result in zip(where, encode([examples[i] for i in where], tokenizer, template,
                                           settings, threads)):
            out[i] = result
    return out


def _encode_stream(chunks: Iterable[list], tokenizer, template, settings: Settings,
                   threads: int | None, seen: list) -> list:
    """``_encode_all`` of examples arriving in chunks (appended to ``seen`` as they come): the
    conversations go to the encoder as they are read; any other type is encoded at the end."""
    others: list[int] = []

    def conversations():
        for chunk in chunks:
            convs = []
            for ex in chunk:
                if type(ex) is Conversation:
                    convs.append(ex)
                else:
                    others.append(len(seen))
                seen.append(ex)
            yield convs

    done = iter(_conversations(conversations(), tokenizer, template, settings, threads))
    rest = iter(_encode_all([seen[i] for i in others], tokenizer, template, settings, threads))
    other = set(others)
    return [next(rest) if i in other else next(done) for i in range(len(seen))]


def encode_list(examples: list | Iterable[list], tokenizer, template, settings: Settings,
                skip: bool, threads: int | None = None):
    """(columns: input_ids, labels, where; counts) of the examples, in order. ``examples``: a
    list, or an iterator of lists (read while the earlier ones are tokenized)."""
    ids, labels, wheres = [], [], []
    counts = {"truncated": 0, "dropped": 0, "zero_trained": 0, "skipped_invalid": 0,
              "split_documents": 0}
    if isinstance(examples, list):
        results = _encode_all(examples, tokenizer, template, settings, threads)
    else:
        chunks, examples = examples, []
        results = _encode_stream(chunks, tokenizer, template, settings, threads, examples)
    for ex, encoded in zip(examples, results):
        if isinstance(encoded, Exception):
            if not isinstance(encoded, TemplateRenderError):
                raise encoded  # the template cannot be used at all (render.TemplateError)
            if not skip:
                raise bad_row(getattr(ex, "where", "") or "row", str(encoded)) from None
            counts["skipped_invalid"] += 1
            continue
        counts["split_documents"] += len(encoded) > 1
        for enc in encoded:
            counts["truncated"] += enc.truncated
            if enc.dropped:
                counts["dropped"] += 1
            elif IGNORE == min(enc.labels, default=IGNORE) == max(enc.labels, default=IGNORE):
                counts["zero_trained"] += 1
            else:  # 'where' (file:line) lets a training fault name the rows of a bad batch
                ids.append(enc.input_ids)
                labels.append(enc.labels)
                wheres.append(getattr(ex, "where", ""))
    return {"input_ids": ids, "labels": labels, "where": wheres}, counts


_POOL_ARGS: tuple = ()


def _encode_range(bounds: tuple[int, int]):
    examples, tokenizer, template, settings, skip, threads = _POOL_ARGS
    return encode_list(examples[bounds[0]:bounds[1]], tokenizer, template, settings, skip,
                       threads)


def encode_examples(examples: list | Iterable[list], tokenizer, template, settings: Settings,
                    skip: bool, num_proc: int | None = None):
    """Encode every example (a list, or an iterator of lists: ``encode_list``); (columns dict,
    counts). Forked workers when num_proc > 1, each encoding one contiguous part as a batch (the
    examples are shared by the fork, not copied)."""
    global _POOL_ARGS
    if (num_proc or 1) > 1 and not isinstance(examples, list):  # forked parts need the list
        examples = [ex for chunk in examples for ex in chunk]
    if not isinstance(examples, list):
        return encode_list(examples, tokenizer, template, settings, skip)
    workers = min(num_proc or 1, len(examples) // MIN_PER_WORKER)
    if workers <= 1:
        return encode_list(examples, tokenizer, template, settings, skip)
    # the CPUs are shared out: each worker tokenizes on its share of threads
    _POOL_ARGS = (examples, tokenizer, template, settings, skip,
                  max(1, usable_cpus() // workers))
    step = -(-len(examples) // workers)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_encode_range, [(i, i + step) for i in range(0, len(examples),
                                                                          step)])
    finally:
        _POOL_ARGS = ()
    columns = {k: [x for part, _ in parts for x in part[k]] for k in parts[0][0]}
    counts = {k: sum(c[k] for _, c in parts) for k in parts[0][1]}
    return columns, counts


def to_dataset(columns: dict):
    """The ``datasets.Dataset`` of encoded columns, with ``Dataset.from_dict``'s types
    (input_ids int32, labels int64, where string), built from flat arrays (~2x faster)."""
    import datasets
    import pyarrow as pa

    from lmforge.data import ragged

    if set(columns) != {"input_ids", "labels", "where"} or not columns["input_ids"]:
        return datasets.Dataset.from_dict(columns)
    table = pa.table({"input_ids": ragged.to_arrow(*ragged.from_lists(columns["input_ids"],
                                                                      "int32")),
                      "labels": ragged.to_arrow(*ragged.from_lists(columns["labels"])),
                      "where": pa.array(columns["where"], pa.string())})
    return datasets.Dataset(table, fingerprint=ragged.fingerprint(table))
