"""Encoding a whole split: example type -> batch encoder (``ENCODERS``, a static table), the rows
and counts the pipeline keeps, and forked workers for ``data.num_proc > 1``.

Every encoder takes a list of examples of its type and returns an ``encode.Batch``: the rows
of each example (a text can give several chunks, an unused KTO row none) as ragged arrays, or
the ``TemplateRenderError`` the chat template raised for it. Conversations (and the chosen /
desirable answers of preference / KTO data under stage sft) go through the one batch-native
encoder, ``encode.encode_rows``. What a split keeps (``encode_list``) is selected on the arrays,
so 20,000 rows reach the dataset (``to_dataset``) without a Python list per row.
"""

from __future__ import annotations

import multiprocessing
from typing import Callable, Iterable

import numpy as np

from lmforge.data import ragged
from lmforge.data.batch_tokenize import usable_cpus
from lmforge.data.encode import IGNORE, Batch, Settings, encode_rows, encode_texts
from lmforge.data.preference import SFT_CONVERSATIONS, KTOExample, PreferenceExample
from lmforge.data.ragged import Rows
from lmforge.data.render import TemplateRenderError
from lmforge.data.sources import bad_row
from lmforge.data.types import Conversation, Text
from lmforge.errors import ConfigError

MIN_PER_WORKER = 256  # below this a forked worker costs more than it saves


def _conversations(examples, tokenizer, template, settings: Settings,
                   threads: int | None = None) -> Batch:
    """``examples``: a list, or an iterator of lists (read while the earlier ones are
    tokenized)."""
    return encode_rows(examples, tokenizer, template, settings, errors="return", threads=threads)


def _texts(examples: list, tokenizer, template, settings: Settings,
           threads: int | None = None) -> Batch:
    return Batch.of(encode_texts(examples, tokenizer, settings))


def _placed(batch: Batch, positions) -> Batch:
    """``batch`` of examples that sit at ``positions`` (ascending) of a longer list."""
    positions = np.asarray(positions, dtype=np.int64)
    return Batch(batch.rows, positions[batch.owner], batch.truncated, batch.dropped,
                 {int(positions[k]): e for k, e in batch.errors.items()})


def _merged(batches: list[Batch]) -> Batch:
    """Batches of disjoint examples of one list, as one (rows in example order)."""
    if len(batches) == 1:
        return batches[0]
    owner = np.concatenate([b.owner for b in batches]) if batches else np.zeros(0, np.int64)
    order = np.argsort(owner, kind="stable")
    flags = [np.concatenate([getattr(b, k) for b in batches] or [np.zeros(0, bool)])[order]
             for k in ("truncated", "dropped")]
    return Batch(Rows.concat([b.rows for b in batches]).take(order), owner[order], *flags,
                 {k: e for b in batches for k, e in b.errors.items()})


def _sft_answers(examples: list, tokenizer, template, settings: Settings,
                 threads: int | None = None) -> Batch:
    """Preference pairs and KTO rows under stage sft: the answer a model should imitate."""
    convs = [SFT_CONVERSATIONS[type(ex)](ex) for ex in examples]
    return _placed(_conversations([c for c in convs if c is not None], tokenizer, template,
                                  settings, threads),
                   [k for k, c in enumerate(convs) if c is not None])


# example type -> encoder(examples, tokenizer, template, settings, threads) -> Batch (threads: of
# the Rust tokenizer, None for the default: one more than the usable CPUs)
ENCODERS: dict[type, Callable[..., Batch]] = {
    Conversation: _conversations,
    Text: _texts,
    PreferenceExample: _sft_answers,
    KTOExample: _sft_answers,
}


def _encode_all(examples: list, tokenizer, template, settings: Settings,
                threads: int | None = None) -> Batch:
    """The rows or errors of every example (each type encoded as one batch)."""
    groups: dict[type, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(type(ex), []).append(i)
    batches = []
    for kind, where in groups.items():
        encode = ENCODERS.get(kind)
        if encode is None:
            raise ConfigError(f"data.format: {kind.__name__} examples cannot be encoded for "
                              "this stage")
        batches.append(_placed(encode([examples[i] for i in where], tokenizer, template,
                                      settings, threads), where))
    return _merged(batches) if batches else Batch.of([])


def _encode_stream(chunks: Iterable[list], tokenizer, template, settings: Settings,
                   threads: int | None, seen: list) -> Batch:
    """``_encode_all`` of examples arriving in chunks (appended to ``seen`` as they come): the
    conversations go to the encoder as they are read; any other type is encoded at the end."""
    others: list[int] = []
    convs_at: list[int] = []

    def conversations():
        for chunk in chunks:
            convs = []
            for ex in chunk:
                if type(ex) is Conversation:
                    convs_at.append(len(seen))
                    convs.append(ex)
                else:
                    others.append(len(seen))
                seen.append(ex)
            yield convs

    done = _conversations(conversations(), tokenizer, template, settings, threads)
    if not others:
        return done
    rest = _encode_all([seen[i] for i in others], tokenizer, template, settings, threads)
    return _merged([_placed(done, convs_at), _placed(rest, others)])


def encode_list(examples: list | Iterable[list], tokenizer, template, settings: Settings,
                skip: bool, threads: int | None = None):
    """((Rows, where) of the rows kept, counts) of the examples, in order. ``examples``: a list,
    or an iterator of lists (read while the earlier ones are tokenized). ``where``: the file:line
    of each row's example (lets a training fault name the rows of a bad batch)."""
    counts = {"truncated": 0, "dropped": 0, "zero_trained": 0, "skipped_invalid": 0,
              "split_documents": 0}
    if isinstance(examples, list):
        batch = _encode_all(examples, tokenizer, template, settings, threads)
    else:
        chunks, examples = examples, []
        batch = _encode_stream(chunks, tokenizer, template, settings, threads, examples)
    for k in sorted(batch.errors):  # the first bad example of the input decides
        error = batch.errors[k]
        if not isinstance(error, TemplateRenderError):
            raise error  # the template cannot be used at all (render.TemplateError)
        if not skip:
            raise bad_row(getattr(examples[k], "where", "") or "row", str(error)) from None
        counts["skipped_invalid"] += 1
    trained = ragged.row_sums(batch.rows.offsets, batch.rows.labels != IGNORE) > 0
    keep = ~batch.dropped & trained
    counts.update(truncated=int(batch.truncated.sum()), dropped=int(batch.dropped.sum()),
                  zero_trained=int((~batch.dropped & ~trained).sum()),
                  split_documents=int((np.bincount(batch.owner) > 1).sum()))
    owners = batch.owner[keep].tolist()
    where = [getattr(examples[k], "where", "") for k in owners]
    return (batch.rows.take(np.flatnonzero(keep)), where), counts


_POOL_ARGS: tuple = ()


def _encode_range(bounds: tuple[int, int]):
    examples, tokenizer, template, settings, skip, threads = _POOL_ARGS
    return encode_list(examples[bounds[0]:bounds[1]], tokenizer, template, settings, skip,
                       threads)


def encode_examples(examples: list | Iterable[list], tokenizer, template, settings: Settings,
                    skip: bool, num_proc: int | None = None):
    """Encode every example (a list, or an iterator of lists: ``encode_list``); ((Rows, where),
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
    rows = Rows.concat([rows for (rows, _), _ in parts])
    where = [w for (_, part), _ in parts for w in part]
    counts = {k: sum(c[k] for _, c in parts) for k in parts[0][1]}
    return (rows, where), counts


def to_dataset(columns):
    """The ``datasets.Dataset`` of encoded rows: ``(Rows, where)`` or a dict of input_ids,
    labels and where lists, with ``Dataset.from_dict``'s types (input_ids int32, labels int64,
    where string), built from flat arrays (~2x faster)."""
    import datasets
    import pyarrow as pa

    if isinstance(columns, dict):
        if set(columns) != {"input_ids", "labels", "where"} or not columns["input_ids"]:
            return datasets.Dataset.from_dict(columns)
        columns = Rows.from_lists(columns["input_ids"], columns["labels"]), columns["where"]
    rows, where = columns
    if not len(rows):
        return datasets.Dataset.from_dict({"input_ids": [], "labels": [], "where": []})
    table = pa.table({"input_ids": ragged.to_arrow(rows.offsets, rows.ids.astype(np.int32)),
                      "labels": ragged.to_arrow(rows.offsets, rows.labels),
                      "where": pa.array(where, pa.string())})
    return datasets.Dataset(table, fingerprint=ragged.fingerprint(table))
