"""Preference data (``data.format: preference``): ``prompt``/``messages``/``instruction`` +
``chosen`` + ``rejected``, or the seeds' ``output: [chosen, rejected]``; optional ``margin``.
KTO data (``data.format: kto``): a prompt + ``completion`` + ``label`` (``kto_tag`` in
LLaMA-Factory files, whose ShareGPT rows end with the assistant turn instead).

Rows become canonical ``PreferenceExample`` / ``KTOExample`` records (registered with the data
pipeline, so sources, mixing, eval splits and the registry work as for SFT); ``render_pair`` /
``render_unpaired`` then render them with the run's chat template.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lmforge.data import formats
from lmforge.data.prompts import (PROMPT_FIELDS, prompt_kind, prompt_messages, prompt_text,
                                  render_completion)
from lmforge.data.sources import bad_row
from lmforge.data.types import EXAMPLE_TYPES, Conversation

TRUE = {"true", "1", "yes", "good", "desirable"}
FALSE = {"false", "0", "no", "bad", "undesirable"}
_ASSISTANT = ("assistant", "gpt", "model", "bot")


@dataclass(frozen=True)
class PreferenceExample:
    prompt: tuple[dict[str, str], ...]
    chosen: str
    rejected: str
    margin: float | None = None
    where: str = ""

    def to_dict(self) -> dict:
        return {"type": "preference", "prompt": list(self.prompt), "chosen": self.chosen,
                "rejected": self.rejected, "margin": self.margin, "where": self.where}


@dataclass(frozen=True)
class KTOExample:
    prompt: tuple[dict[str, str], ...]
    completion: str
    label: bool
    where: str = ""

    def to_dict(self) -> dict:
        return {"type": "kto", "prompt": list(self.prompt), "completion": self.completion,
                "label": self.label, "where": self.where}


def _key(name: str, columns: dict) -> str:
    return columns.get(name, name) or name


def answer_text(value: Any, where: str, key: str) -> str:
    """An answer: a string, an assistant message, or a list holding one assistant message."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    elif isinstance(value, list):
        raise bad_row(where, f"must be one assistant message, got a list of {len(value)} (a "
                             "full conversation belongs in chosen and rejected without a prompt "
                             "column: the prompt is then their shared beginning)", key)
    if isinstance(value, dict):
        role = value.get("role", value.get("from"))
        if role not in _ASSISTANT:
            raise bad_row(where, f"the answer message must have role assistant (got {role!r})",
                          key)
        value = value.get("content", value.get("value"))
    if not isinstance(value, str):
        raise bad_row(where, f"must be a string or an assistant message, got "
                             f"{type(value).__name__}", key)
    if not value.strip():
        raise bad_row(where, "is empty", key)
    return value


def _answers(row: dict, columns: dict, where: str) -> tuple[str, str]:
    ckey, rkey, okey = (_key(n, columns) for n in ("chosen", "rejected", "output"))
    if ckey in row or rkey in row:
        for key in (ckey, rkey):
            if row.get(key) is None:
                raise bad_row(where, "missing", key)
        return answer_text(row[ckey], where, ckey), answer_text(row[rkey], where, rkey)
    out = row.get(okey)
    if isinstance(out, list) and len(out) == 2:
        return answer_text(out[0], where, okey), answer_text(out[1], where, okey)
    if out is not None:
        raise bad_row(where, "must be a list [chosen, rejected] for preference data", okey)
    raise bad_row(where, "missing (give chosen + rejected, or output: [chosen, rejected])", ckey)


def _margin(row: dict, columns: dict, where: str) -> float | None:
    key = _key("margin", columns)
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad_row(where, f"must be a number, got {value!r}", key) from None
    if not math.isfinite(number) or isinstance(value, bool):  # NaN/Inf would poison the loss
        raise bad_row(where, f"must be a finite number, got {value!r}", key)
    return number


def _implicit(row: dict, columns: dict) -> bool:
    """chosen and rejected are whole conversations whose shared beginning is the prompt (most
    Hub preference sets); a prompt column is then ignored unless it is a message list too
    (trl's ``maybe_extract_prompt`` rule)."""
    chosen, rejected = row.get(_key("chosen", columns)), row.get(_key("rejected", columns))
    if not (formats.is_chat(chosen) and formats.is_chat(rejected)):
        return False
    if len(chosen) == 1 and len(rejected) == 1:
        return False
    return prompt_kind(row, columns) is None or not formats.is_chat(
        row.get(_key("prompt", columns)))


def _extract(row: dict, columns: dict, where: str, default_system: str | None):
    from trl.data_utils import extract_prompt

    ckey, rkey = _key("chosen", columns), _key("rejected", columns)
    system, chosen = formats.message_list(row[ckey], where, ckey, columns)
    rejected = formats.message_list(row[rkey], where, rkey, columns)[1]
    split = extract_prompt({"chosen": chosen, "rejected": rejected})
    prompt, answers = split["prompt"], (split["chosen"], split["rejected"])
    for key, answer in zip((ckey, rkey), answers):
        if len(answer) != 1 or answer[0]["role"] != "assistant":
            raise bad_row(where, "must be the same conversation as the other answer but for "
                                 "one final assistant message (their shared beginning is the "
                                 f"prompt; here {len(answer)} messages follow it)", key)
    formats.check_turns(prompt, where, ckey, last="user")
    system = system or default_system
    head = ({"role": "system", "content": system},) if system else ()
    return PreferenceExample(head + tuple(prompt), answer_text(answers[0], where, ckey),
                             answer_text(answers[1], where, rkey), _margin(row, columns, where),
                             where)


def from_preference(row: dict, columns: dict, where: str, default_system: str | None = None):
    if _implicit(row, columns):
        return _extract(row, columns, where, default_system)
    chosen, rejected = _answers(row, columns, where)
    rest = {k: v for k, v in row.items() if k != _key("output", columns)}
    return PreferenceExample(prompt_messages(rest, columns, where, default_system), chosen,
                             rejected, _margin(row, columns, where), where)


def _label(row: dict, columns: dict, where: str) -> bool:
    key = next((k for k in (_key("label", columns), _key("kto_tag", columns)) if k in row),
               _key("label", columns))
    value = row.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise bad_row(where, "missing" if value is None else
                  f"must be true/false (desirable or not), got {value!r}", key)


def from_kto(row: dict, columns: dict, where: str, default_system: str | None = None):
    label = _label(row, columns, where)
    ckey = _key("completion", columns)
    if ckey in row:
        return KTOExample(prompt_messages(row, columns, where, default_system),
                          answer_text(row[ckey], where, ckey), label, where)
    if prompt_kind(row, columns) != "messages":
        raise bad_row(where, "missing (KTO rows need a completion, or messages ending with the "
                             "assistant's answer)", ckey)
    system, msgs, key = formats.parse_messages(row, columns, where)
    formats.check_turns(msgs, where, key)  # ends with the assistant: that is the completion
    head = ([{"role": "system", "content": system or default_system}]
            if system or default_system else [])
    return KTOExample(tuple(head + msgs[:-1]), msgs[-1]["content"], label, where)


@dataclass
class Pair:
    """A preference example rendered: prompt text (ending with the assistant header) and both
    answers as the template writes them (end-of-turn token included)."""

    prompt: str
    chosen: str
    rejected: str
    margin: float | None = None
    where: str = ""


@dataclass
class Unpaired:
    prompt: str
    completion: str
    label: bool
    where: str = ""


def render_pair(ex: PreferenceExample, template: str, tokenizer) -> Pair:
    prompt = prompt_text(ex.prompt, template, tokenizer)
    return Pair(prompt,
                render_completion(ex.prompt, ex.chosen, template, tokenizer, prompt, ex.where),
                render_completion(ex.prompt, ex.rejected, template, tokenizer, prompt, ex.where),
                ex.margin, ex.where)


def render_unpaired(ex, template: str, tokenizer) -> list[Unpaired]:
    """KTO rows; a preference pair gives two (chosen desirable, rejected not)."""
    if isinstance(ex, PreferenceExample):
        p = render_pair(ex, template, tokenizer)
        return [Unpaired(p.prompt, p.chosen, True, p.where),
                Unpaired(p.prompt, p.rejected, False, p.where)]
    prompt = prompt_text(ex.prompt, template, tokenizer)
    return [Unpaired(prompt, render_completion(ex.prompt, ex.completion, template, tokenizer,
                                               prompt, ex.where), ex.label, ex.where)]


def _answered(prompt, answer: str, where: str) -> Conversation:
    return Conversation(tuple(prompt) + ({"role": "assistant", "content": answer},), {}, where)


# what stage sft (and data preview) trains of preference data: the chosen answers of pairs and
# the desirable answers of KTO rows (None: nothing), encoded by the one encoder (data/encoders.py)
SFT_CONVERSATIONS = {
    PreferenceExample: lambda ex: _answered(ex.prompt, ex.chosen, ex.where),
    KTOExample: lambda ex: _answered(ex.prompt, ex.completion, ex.where) if ex.label else None,
}


def _register() -> None:
    base = {*PROMPT_FIELDS, *formats.TAG_KEYS}
    formats.CONVERTERS["preference"] = from_preference
    formats.FORMAT_COLUMNS["preference"] = base | {"chosen", "rejected", "output", "margin"}
    formats.CONVERTERS["kto"] = from_kto
    formats.FORMAT_COLUMNS["kto"] = base | {"completion", "label", "kto_tag"}
    EXAMPLE_TYPES["preference"] = lambda d: PreferenceExample(
        tuple(d["prompt"]), d["chosen"], d["rejected"], d.get("margin"), d.get("where", ""))
    EXAMPLE_TYPES["kto"] = lambda d: KTOExample(tuple(d["prompt"]), d["completion"],
                                                bool(d["label"]), d.get("where", ""))


_register()
