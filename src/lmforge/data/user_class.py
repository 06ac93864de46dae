"""``data.format: python``: a user class loads its own files and converts each record.

``data.source: "my_module:MyData"`` names a class importable from the working directory. lmforge
creates it with ``data.source_args`` as keyword arguments, calls ``load(split)`` for ``"train"``
and ``"eval"`` while training, and for ``"test"`` in ``lmforge eval RUN`` (falling back to
``"eval"``; an iterable of records; ``None``/empty or ``NotImplementedError`` = no such split),
and ``convert(record)`` on each record, which returns ``{"input", "output", "origin"?}``
(optionally ``system`` and ``history``; or ``{"text"}`` for pretraining). ``origin`` is kept on
the example for metrics later.
"""

from __future__ import annotations

from typing import Any

from lmforge.data.formats import _history, _with_system, field_value
from lmforge.data.types import Conversation, Text
from lmforge.errors import ConfigError, DataError

TEST_SPLITS = ("test", "eval")  # what lmforge eval RUN evaluates a class-backed run on

_HINT = ("the class needs load(self, split) returning records and convert(self, record) "
         "returning {'input': ..., 'output': ..., 'origin': {...}}")


def load_class(source: str):
    from lmforge.utils.resolve import load_where, split_ref

    module_name, class_name = split_ref(source, "data.source")
    module = load_where(module_name, "data.source")  # only from the working directory
    cls = getattr(module, class_name, None)
    if cls is None:
        names = [n for n in dir(module) if isinstance(getattr(module, n), type)
                 and not n.startswith("_")]
        raise ConfigError(f"data.source: module '{module_name}' has no class '{class_name}' "
                          f"(it defines: {', '.join(names) or 'no classes'})")
    for method in ("load", "convert"):
        if not callable(getattr(cls, method, None)):
            raise ConfigError(f"data.source: class '{source}' has no method '{method}'", _HINT)
    return cls


def instantiate(source: str, args: dict[str, Any]):
    cls = load_class(source)
    try:
        return cls(**args)
    except TypeError as exc:
        raise ConfigError(f"data.source_args: cannot create '{source}' with {sorted(args)}: "
                          f"{exc}") from None


def _records(obj, split: str):
    try:
        records = obj.load(split)
    except NotImplementedError:
        return []
    return [] if records is None else records


def to_example(out: Any, where: str, default_system: str | None):
    """A converted record ({input, output, origin?, system?, history?} or {text}) -> example."""
    if not isinstance(out, dict):
        raise DataError(f"convert() must return a dict, got {type(out).__name__}", where,
                        hint=_HINT)
    origin = out.get("origin")
    origin = origin if isinstance(origin, dict) else ({} if origin is None else {"origin": origin})
    if "text" in out and "input" not in out:
        return Text(field_value(out, "text", {}, where), where, origin)
    prompt = field_value(out, "input", {}, where)
    answer = field_value(out, "output", {}, where)
    system = field_value(out, "system", {}, where, required=False, allow_empty=True)
    msgs = _history(out, {}, where) + [{"role": "user", "content": prompt},
                                       {"role": "assistant", "content": answer}]
    return Conversation(_with_system(system or default_system, msgs), origin, where)


def load_split(obj, source: str, split: str, default_system: str | None):
    """Yield (where, example or DataError) for every record of ``split``."""
    for i, record in enumerate(_records(obj, split)):
        where = f"{source}[{split}]:{i + 1}"
        try:
            out = obj.convert(record)
        except DataError as exc:
            yield where, exc
            continue
        try:
            yield where, to_example(out, where, default_system)
        except DataError as exc:
            yield where, exc


def evaluation_examples(cfg) -> tuple[str, list] | None:
    """(split, examples) that ``lmforge eval RUN`` evaluates a class-backed run on: the class's
    ``test`` split, else its ``eval`` split; None when both are empty."""
    obj = instantiate(cfg.data.source, cfg.data.source_args)
    for split in TEST_SPLITS:
        examples = []
        for _, ex in load_split(obj, cfg.data.source, split, cfg.data.system):
            if isinstance(ex, DataError):
                if not cfg.data.skip_invalid:
                    raise ex
                continue
            examples.append(ex)
        if examples:
            return split, examples
    return None


NO_TEST_SPLIT = ("return the held-out records from load('test') (or load('eval')), set data.eval "
                 "to a fraction, or pass --data-file FILE")
