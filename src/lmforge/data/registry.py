"""LLaMA-Factory compatibility: read a ``dataset_info.json`` registry so its users bring their
datasets unchanged (``data.registry: data/dataset_info.json`` + ``data.train: [alpaca_en, ...]``).

An entry gives ``file_name`` (a file or a folder next to the registry), ``formatting`` (``alpaca``
or ``sharegpt``), ``columns`` (``prompt``, ``query``, ``response``, ``history``, ``messages``,
``system``; ``chosen``/``rejected``/``kto_tag`` for preference data) and, for sharegpt, ``tags``
(``role_tag``, ``content_tag``, ``user_tag``, ``assistant_tag``, ``system_tag``). Each entry is
mapped to lmforge's own format name and column mapping. Hub datasets are not fetched (offline).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.errors import ConfigError

# LLaMA-Factory column name -> lmforge alpaca field
_ALPACA = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
           "system": "system"}
_TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "system_tag", "function_tag",
         "observation_tag")


@dataclass(frozen=True)
class Entry:
    name: str
    path: str
    format: str
    columns: dict[str, str] = field(default_factory=dict)
    samples: int | None = None


def read_registry(path: str) -> dict[str, dict]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"data.registry: file '{p}' not found")
    try:
        info = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"data.registry: {p} is not valid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise ConfigError(f"data.registry: {p} must be a JSON object of dataset entries")
    return info


def _alpaca_columns(cols: dict, stage: str) -> tuple[str, dict[str, str]]:
    if stage == "pt":  # pretraining reads only the prompt column as text
        return "text", {"text": cols.get("prompt", "instruction")}
    # system and history are read only when the entry maps them (LLaMA-Factory's default: None)
    mapped = {"instruction": "instruction", "input": "input", "output": "output",
              "system": "", "history": ""}
    for lf_name, ours in _ALPACA.items():
        if lf_name in cols:
            mapped[ours] = cols[lf_name]
    return "alpaca", mapped


def _sharegpt_columns(cols: dict, tags: dict) -> dict[str, str]:
    mapped = {"messages": cols.get("messages", "conversations"), "system": cols.get("system", ""),
              "tools": cols.get("tools", "")}
    if tags:
        mapped.update({"role_tag": "from", "content_tag": "value", "user_tag": "human",
                       "assistant_tag": "gpt", "system_tag": "system"})
        mapped.update({k: tags[k] for k in _TAGS if k in tags})
    return mapped


def _preference(name: str, formatting: str, cols: dict, tags: dict) -> tuple[str, dict]:
    kind = "kto" if "kto_tag" in cols else "preference"
    base = (_sharegpt_columns(cols, tags) if formatting == "sharegpt"
            else _alpaca_columns(cols, "sft")[1])
    extra = {k: cols[k] for k in ("chosen", "rejected", "kto_tag") if k in cols}
    return kind, {**base, **extra}


def entry(info: dict, name: str, registry: str, stage: str) -> Entry:
    if name not in info:
        close = difflib.get_close_matches(name, list(info), n=1)
        tip = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"data.train: dataset '{name}' is not in {registry}{tip}")
    e = info[name]
    where = f"{registry}: entry '{name}'"
    if not isinstance(e, dict):
        raise ConfigError(f"{where} must be an object")
    if "file_name" not in e:
        remote = [k for k in ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url",
                              "cloud_file_name") if k in e]
        why = (f"uses {remote[0]}, which lmforge does not download (it works offline); download "
               "the files and set file_name") if remote else "has no file_name"
        raise ConfigError(f"{where} {why}")
    formatting = e.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise ConfigError(f"{where}: formatting '{formatting}' is not supported (alpaca, sharegpt)")
    cols, tags = e.get("columns") or {}, e.get("tags") or {}
    if e.get("ranking") or "kto_tag" in cols:
        fmt, mapped = _preference(name, formatting, cols, tags)
    elif formatting == "sharegpt":
        if stage == "pt":
            raise ConfigError(f"{where}: sharegpt datasets cannot be used for pretraining")
        fmt, mapped = "messages", _sharegpt_columns(cols, tags)
    else:
        fmt, mapped = _alpaca_columns(cols, stage)
    path = Path(registry).parent / e["file_name"]
    samples = e.get("num_samples")
    return Entry(name, str(path), fmt, mapped, samples if isinstance(samples, int) else None)
