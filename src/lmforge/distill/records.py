"""Input records -> teacher requests, and teacher samples -> output rows.

Each record gets a stable key (its ``id_field`` value, or a hash of its content) so that a
resumed run can tell which records are finished. All prompts are rendered before the first request
so that a bad record stops the run at once, naming its file:line and field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from lmforge.config.distill import DistillConfig
from lmforge.data.sources import read_rows
from lmforge.errors import DataError


@dataclass(frozen=True)
class Record:
    key: str
    where: str  # file:line, for messages
    data: dict[str, Any]
    messages: tuple[dict[str, str], ...]  # what the teacher is sent
    prompt: str  # what the student sees
    system: str | None


def record_key(record: dict, id_field: str) -> str:
    value = record.get(id_field)
    if value is not None and str(value).strip():
        return str(value)
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _split(where: str) -> tuple[str, int | None]:
    file, _, line = where.rpartition(":")
    return (file, int(line)) if line.isdigit() else (where, None)


class Renderer:
    """Compiled Jinja templates (sandboxed, strict: an undefined field is an error)."""

    def __init__(self, cfg: DistillConfig):
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment

        env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
        self._t = {name: env.from_string(text) for name, text in (
            ("prompt", cfg.prompt), ("system", cfg.system),
            ("student_prompt", cfg.student_prompt), ("student_system", cfg.student_system))
            if text is not None}

    def render(self, name: str, record: dict, where: str) -> str | None:
        from jinja2 import TemplateError, UndefinedError

        template = self._t.get(name)
        if template is None:
            return None
        try:
            return template.render(**record, record=record).strip()
        except UndefinedError as exc:
            file, line = _split(where)
            field = str(exc.message).split("'")[1] if "'" in str(exc.message) else None
            raise DataError(f"is missing (used by distill.{name}: {exc.message})", file, line,
                            field, hint="fix the record or the template") from None
        except TemplateError as exc:
            file, line = _split(where)
            raise DataError(f"distill.{name} failed: {exc}", file, line) from None


def load_records(cfg: DistillConfig) -> list[Record]:
    """Read, key and render every input record (duplicates of one content are kept once)."""
    renderer = Renderer(cfg)
    seen: dict[str, tuple[str, dict]] = {}
    out: list[Record] = []
    gold = cfg.verify.gold_field if cfg.verify and cfg.verify.mode == "gold" else None
    for where, row in read_rows(cfg.input):
        if cfg.limit is not None and len(seen) >= cfg.limit:
            break
        key = record_key(row, cfg.id_field)
        if key in seen:
            if seen[key][1] != row:
                file, line = _split(where)
                raise DataError(f"duplicate id {key!r} (first at {seen[key][0]}) with different "
                                "content; ids must be unique for resume", file, line, cfg.id_field)
            continue
        seen[key] = (where, row)
        if gold and row.get(gold) is None:
            file, line = _split(where)
            raise DataError("is missing (verify.gold_field)", file, line, gold)
        prompt = renderer.render("prompt", row, where)
        system = renderer.render("system", row, where)
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}]
        student = renderer.render("student_prompt", row, where)
        student_sys = renderer.render("student_system", row, where)
        out.append(Record(key, where, row, tuple(messages), student if student is not None
                          else prompt, student_sys if cfg.student_system is not None else system))
    return out


def output_row(cfg: DistillConfig, rec: Record, response: str, meta: dict) -> dict:
    """One SFT row in the configured format; the input record is kept under ``origin``."""
    if cfg.format == "messages":
        msgs = ([{"role": "system", "content": rec.system}] if rec.system else []) + [
            {"role": "user", "content": rec.prompt}, {"role": "assistant", "content": response}]
        row: dict[str, Any] = {"messages": msgs}
    else:
        row = {"prompt": rec.prompt, "response": response}
        if rec.system:
            row["system"] = rec.system
    row["origin"] = rec.data
    row["distill"] = meta
    return row


def data_block(cfg: DistillConfig) -> str:
    """The ``data:`` block that trains on the output."""
    import yaml

    return yaml.safe_dump({"data": {"train": cfg.output, "format": cfg.format}}, sort_keys=False)
