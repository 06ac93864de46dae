"""Read what ``lmforge eval`` and ``lmforge predict`` run on.

- ``eval_samples``: the run's eval split exactly as training saw it (``data.pipeline.
  load_examples``: same files, mixing and seeded split), or a given file in a given format.
- ``prediction_inputs``: rows of any prompt form (``messages``, ``prompt``, ``instruction`` +
  ``input``; see ``lmforge.data.prompts``) turned into the chat that precedes the answer; a row
  that also carries the answer (``output``, ``response``, or a final assistant message) keeps it
  as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lmforge.errors import ConfigError, DataError

_ANSWER_KEYS = {"instruction": "output", "prompt": "response"}


@dataclass
class Item:
    index: int  # position in the input (the key that makes prediction resumable)
    where: str
    messages: list[dict]
    reference: str | None = None
    origin: dict = field(default_factory=dict)
    tools: list | None = None  # the row's ``tools`` column (JSON schemas), for the template


def _last_assistant(row: dict, key: str) -> tuple[dict, str | None]:
    msgs = row.get(key)
    if not isinstance(msgs, list) or not msgs or not isinstance(msgs[-1], dict):
        return row, None
    role = str(msgs[-1].get("role", msgs[-1].get("from", ""))).lower()
    if role not in ("assistant", "gpt", "model", "bot"):
        return row, None
    content = msgs[-1].get("content", msgs[-1].get("value"))
    return {**row, key: msgs[:-1]}, content if isinstance(content, str) else None


def to_item(index: int, where: str, row: dict, columns: dict,
            system: str | None = None) -> Item:
    from lmforge.data.prompts import prompt_kind, prompt_messages

    kind = prompt_kind(row, columns)
    reference = None
    if kind == "messages":
        key = columns.get("messages", "messages")
        row, reference = _last_assistant(row, key if key in row else "conversations")
    elif kind in _ANSWER_KEYS:
        value = row.get(columns.get(_ANSWER_KEYS[kind], _ANSWER_KEYS[kind]))
        reference = value if isinstance(value, str) else None
    tools, messages = tool_context(row, columns, where, kind, system)
    if messages is None:
        messages = [dict(m) for m in prompt_messages(row, columns, where, system)]
    origin = row.get(columns.get("origin", "origin"))
    origin = origin if isinstance(origin, dict) else ({"origin": origin} if origin else {})
    return Item(index, where, messages, reference, origin, tools)


def tool_context(row: dict, columns: dict, where: str, kind: str | None,
                 system: str | None = None) -> tuple[list | None, list | None]:
    """(the row's tools, its prompt messages when they hold tool calls or results, else None).
    Such a chat may end with a user turn or with tool results (the model answers them)."""
    from lmforge.data import formats
    from lmforge.data import tools as tool_data

    schemas = tool_data.parse_tools(row, columns, where)
    schemas = list(schemas) if schemas else None
    if kind != "messages":
        return schemas, None
    inline, msgs, key = formats.parse_messages(row, columns, where)
    if not tool_data.has_tool_turns(msgs):
        return schemas, None
    last = "tool" if msgs and msgs[-1]["role"] == "tool" else "user"
    tool_data.check_tool_turns(msgs, where, key, last)
    system = inline or system
    return schemas, ([{"role": "system", "content": system}] if system else []) + msgs


def prediction_inputs(path: str | Path, columns: dict | None = None,
                      system: str | None = None) -> list[Item]:
    from lmforge.data.sources import iter_rows

    items = []
    for i, (where, row) in enumerate(iter_rows(path)):
        if isinstance(row, DataError):
            raise row
        items.append(to_item(i, where, row, columns or {}, system))
    if not items:
        raise DataError("no input rows", str(path))
    return items


def detect_format(path: str | Path) -> str:
    """The SFT format of a file from its first row's keys."""
    from lmforge.data.sources import iter_rows

    for where, row in iter_rows(path):
        if isinstance(row, DataError):
            raise row
        if "messages" in row or "conversations" in row:
            return "messages"
        if "instruction" in row:
            return "alpaca"
        if "prompt" in row and "response" in row:
            return "prompt_response"
        raise DataError("cannot tell the format from the keys "
                        f"({', '.join(sorted(row))})", where,
                        hint="pass --format alpaca|prompt_response|messages")
    raise DataError("no rows", str(path))


def eval_samples(cfg, data_file: str | None = None, fmt: str | None = None,
                 max_samples: int | None = None) -> list:
    """The Samples to evaluate: ``data_file`` (format ``fmt``), else the run's eval split."""
    from lmforge.eval.runner import samples_from

    if data_file:
        from lmforge.data.pipeline import read_source
        from lmforge.data.plan import SourcePlan

        plan = SourcePlan(path=data_file, format=fmt or detect_format(data_file),
                          columns=dict(cfg.data.columns))
        examples = read_source(cfg, plan, [0])
    elif cfg.data.format == "python":  # the class's test split (else eval, else the fraction)
        from lmforge.data.pipeline import load_examples
        from lmforge.data.user_class import NO_TEST_SPLIT, evaluation_examples

        found = evaluation_examples(cfg)
        if found is None and not isinstance(cfg.data.eval, float):
            raise ConfigError(f"data.source: {cfg.data.source}.load('test') and load('eval') "
                              "gave no examples, so there is nothing to evaluate on",
                              NO_TEST_SPLIT)
        examples = found[1] if found else load_examples(cfg).eval or []
    else:
        if cfg.data.eval is None:
            raise ConfigError("data.eval: not set, so there is nothing to evaluate on",
                              "set data.eval in the config, or pass --data-file FILE")
        from lmforge.data.pipeline import load_examples

        examples = load_examples(cfg).eval or []
    samples = samples_from(examples, max_samples)
    if not samples:
        raise DataError("no examples to evaluate", data_file)
    return samples
