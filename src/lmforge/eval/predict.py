"""Batch prediction to JSONL, resumable, with optional majority voting.

Each output line is one input: ``index`` (its position in the input file, the resume key),
``input`` (the chat sent), ``prediction`` (text), ``answer`` (extracted with the answer pattern),
``reference`` when the input had one, ``tools`` and the parsed ``tool_calls`` (OpenAI form,
arguments as a JSON string) when the input had a ``tools`` column, and with ``votes > 1`` the
``votes`` counts and the ``samples``. Records are appended and flushed one by one; a rerun skips every index already in the
output (a line cut off by an interrupt is dropped first), so nothing finished is redone.

With votes, each input is sampled on its own with seed ``seed + index``: its answer does not
depend on batching or on where a previous run stopped.

An answer is unparseable when the answer pattern does not match (without a pattern: an empty
text). ``retries`` samples such an input again, up to N more times (seed ``seed + index +
RETRY_SEED * attempt``, so a rerun gives the same); a record that needed them carries
``attempts``. Still unparseable, the answer is ``fallback`` when one is given (the record carries
``"fallback": true``), so every input gets exactly one answer. The counts come back in the report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from lmforge.config.eval import GenerationConfig
from lmforge.eval.inputs import Item

log = logging.getLogger(__name__)

RETRY_SEED = 100_003  # seed stride between the attempts of one input (a prime: no collisions)


def done_indices(path: Path) -> set[int]:
    """Indices already written; drops a trailing partial line left by an interrupt."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    keep = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
    if len(keep) != len(data):
        log.warning("%s: dropping an incomplete last line (interrupted run)", path)
        path.write_bytes(keep)
    done = set()
    for n, line in enumerate(keep.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            done.add(int(json.loads(line)["index"]))
        except (ValueError, KeyError, TypeError):
            from lmforge.errors import DataError

            raise DataError("is not a prediction record of lmforge predict (no 'index')",
                            str(path), n, hint="write to a new --output file") from None
    return done


def _record(item: Item, text: str, answer: str | None, extra: dict, engine=None) -> dict:
    rec = {"index": item.index, "input": item.messages, "prediction": text, "answer": answer}
    if item.tools:
        from lmforge.infer.tool_calls import openai_calls

        rec["tools"] = item.tools
        rec["tool_calls"] = openai_calls(engine.tool_calls(text)[1], ids=False)
    if item.reference is not None:
        rec["reference"] = item.reference
    if item.origin:
        rec["origin"] = item.origin
    rec.update(extra)
    return rec


def _tools(items: Sequence[Item]) -> dict:
    """The ``tools`` argument of ``generate`` (only when some input has tools)."""
    return {"tools": [i.tools for i in items]} if any(i.tools for i in items) else {}


def _unparseable(rec: dict, pattern: str | None) -> bool:
    return (rec["answer"] is None) if pattern else not rec["prediction"].strip()


def _voted(engine, item: Item, gen: GenerationConfig, votes: int, pattern: str | None,
           attempt: int = 0) -> dict:
    from lmforge.eval.answers import extract, vote
    from lmforge.infer.engine import options

    g = options(gen, do_sample=True, num_return_sequences=votes,
                seed=(gen.seed or 0) + item.index + RETRY_SEED * attempt)
    comp = engine.generate([item.messages], g, logprobs=True, **_tools([item]))[0]
    texts = [c.text for c in comp.choices]
    answers = [extract(t, pattern) for t in texts]
    v = vote(answers, [c.logprob for c in comp.choices])
    samples = [{"text": t, "answer": a, "logprob": c.logprob}
               for t, a, c in zip(texts, answers, comp.choices)]
    return _record(item, texts[v.index], v.answer, {"votes": v.counts, "samples": samples},
                   engine)


def _plain(engine, items: Sequence[Item], gen: GenerationConfig,
           pattern: str | None) -> list[dict]:
    from lmforge.eval.answers import extract
    from lmforge.infer.engine import options

    g = options(gen, num_return_sequences=1,
                seed=None if gen.seed is None else gen.seed + items[0].index)
    comps = engine.generate([i.messages for i in items], g, **_tools(items))
    return [_record(i, c.text, extract(c.text, pattern) if pattern else None, {}, engine)
            for i, c in zip(items, comps)]


@dataclass
class Retry:
    retries: int = 0  # extra attempts for an unparseable answer (sampled)
    fallback: str | None = None  # the answer when every attempt was unparseable


def _settle(engine, item: Item, rec: dict, gen: GenerationConfig, votes: int,
            pattern: str | None, retry: Retry, counts: dict) -> dict:
    """Retry an unparseable answer, then fall back; updates the counts."""
    if not _unparseable(rec, pattern):
        return rec
    counts["retried"] += retry.retries > 0
    attempt = 0
    while attempt < retry.retries and _unparseable(rec, pattern):
        attempt += 1
        rec = _voted(engine, item, gen, max(votes, 1), pattern, attempt)
        if votes <= 1:  # one sample: no vote bookkeeping in the record
            rec.pop("votes"), rec.pop("samples")
            if not pattern:
                rec["answer"] = None
    if attempt:
        rec["attempts"] = attempt + 1
    if not _unparseable(rec, pattern):
        counts["recovered"] += 1
    elif retry.fallback is not None:
        rec.update(answer=retry.fallback, fallback=True)
        counts["fallback"] += 1
    else:
        counts["unparseable"] += 1
    return rec


def predict(engine, items: Sequence[Item], output: Path, gen: GenerationConfig,
            votes: int = 1, pattern: str | None = None,
            progress: Callable[[int], None] | None = None, retry: Retry | None = None) -> dict:
    """Write predictions for the items not yet in ``output``; returns counts: inputs, skipped,
    written, and of those written: retried, recovered (parsed on a retry), fallback,
    unparseable."""
    retry = retry or Retry()
    output.parent.mkdir(parents=True, exist_ok=True)
    done = done_indices(output)
    todo = [i for i in items if i.index not in done]
    counts = {"inputs": len(items), "skipped": len(items) - len(todo), "written": len(todo),
              "retried": 0, "recovered": 0, "fallback": 0, "unparseable": 0}
    if done:
        log.info("%s: %d input(s) already done, %d to go", output, len(items) - len(todo),
                 len(todo))
        if progress is not None:
            progress(len(items) - len(todo))
    with output.open("a", encoding="utf-8") as f:
        def write(item: Item, rec: dict) -> None:
            rec = _settle(engine, item, rec, gen, votes, pattern, retry, counts)
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()

        if votes > 1:
            for item in todo:
                write(item, _voted(engine, item, gen, votes, pattern))
                if progress is not None:
                    progress(1)
        else:
            step = max(1, engine.batch_size)
            for start in range(0, len(todo), step):
                chunk = todo[start:start + step]
                for item, rec in zip(chunk, _plain(engine, chunk, gen, pattern)):
                    write(item, rec)
                if progress is not None:
                    progress(len(chunk))
    return counts
