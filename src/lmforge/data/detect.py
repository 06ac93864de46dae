"""``data.format: auto``: the row format of a source, told from the columns of its first rows and
the stage, and the checks every row gets before conversion (media refused).

Each of the first ``PEEK`` valid rows gets the set of formats its columns fit (after the renames of
``data.columns``); the source's format is the one every row agrees on, among those the stage
reads (``STAGE_FORMATS``). No candidate, rows that disagree, or several candidates (ambiguous
columns) are errors that list what was found and name ``data.format`` / ``data.columns``.
Nothing here tokenizes; ``choose`` only looks at keys (and whether ``output`` is a list).
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any, Iterable, Iterator

from lmforge.data import preference, prompts  # noqa: F401 - they register their converters
from lmforge.data.sources import Row, bad_row
from lmforge.errors import DataError

PEEK = 20
SFT_FORMATS = ("messages", "alpaca", "prompt_response", "prompt_completion")
STAGE_FORMATS: dict[str, tuple[str, ...]] = {
    "pt": ("text",),
    "sft": (*SFT_FORMATS, "preference", "kto"),
    "rm": ("preference",), "dpo": ("preference",), "orpo": ("preference",),
    "kto": ("kto", "preference"),
    "ppo": ("prompt",), "grpo": ("prompt",),
}
# what each format needs, for messages (canonical column names)
NEEDS = {"text": "text", "messages": "messages (or conversations)",
         "alpaca": "instruction + output", "prompt_response": "prompt + response",
         "prompt_completion": "prompt + completion", "preference": "chosen + rejected",
         "kto": "completion (or messages) + label", "prompt": "prompt, messages or instruction"}
MEDIA_COLUMNS = ("images", "videos", "audios", "image", "video", "audio")
_PLACEHOLDER = re.compile(r"<(image|video|audio)>")
MEDIA_HINT = ("lmforge trains on text only (multimodal training does not exist yet): remove the "
              "media columns and the <image>/<video>/<audio> placeholders to train on the text "
              "alone, or use a multimodal trainer")


def canonical(row: dict, columns: dict) -> dict[str, Any]:
    """The row under canonical names: ``data.columns`` renames applied, unmapped keys kept."""
    renamed = {v: k for k, v in columns.items() if v}
    out = {renamed.get(k, k): v for k, v in row.items() if v is not None}
    for name, source in columns.items():
        if not source:  # mapped to "": the dataset has no such column
            out.pop(name, None)
    if "conversations" in out and "messages" not in out:
        out["messages"] = out.pop("conversations")
    return out


def _hinted(err: DataError, hint: str) -> DataError:
    err.hint = hint
    return err


def row_formats(row: dict, columns: dict) -> set[str]:
    """Every format whose required columns this row has (before the stage is considered)."""
    r = canonical(row, columns)
    has = r.__contains__
    output = r.get("output")
    found = {"prompt"} if has("messages") or has("prompt") or has("instruction") else set()
    if has("chosen") and has("rejected") or (has("instruction") and isinstance(output, list)
                                             and len(output) == 2):
        return found | {"preference"}
    if has("label") or has("kto_tag"):
        return found | ({"kto"} if has("completion") or has("messages") else set())
    if has("text") and isinstance(r["text"], str):
        found.add("text")
    if has("messages"):
        found.add("messages")
    if has("prompt") and has("completion"):
        found.add("prompt_completion")
    if has("prompt") and has("response"):
        found.add("prompt_response")
    if has("instruction") and has("output"):
        found.add("alpaca")
    return found


def _columns_of(row: dict) -> str:
    return ", ".join(sorted(map(str, row))) or "none"


def _hint(stage: str) -> str:
    return (f"set data.format to one of {', '.join(STAGE_FORMATS.get(stage, ()))} (stage "
            f"{stage}), and map differently named columns with data.columns")


def choose(rows: list[tuple[str, dict]], stage: str, columns: dict, label: str) -> str:
    """The one format the first ``rows`` agree on for ``stage``; a DataError otherwise."""
    allowed = STAGE_FORMATS.get(stage, SFT_FORMATS)
    agreed: set[str] | None = None
    first: dict[str, str] = {}  # format set -> first row with it (for the disagreement message)
    unfit = None  # the first row that fits no format of the stage (an invalid row, probably)
    for where, row in rows:
        fits = row_formats(row, columns)
        fits = {"prompt"} & fits if stage in ("ppo", "grpo") else fits - {"prompt"}
        usable = fits & set(allowed)
        if not usable:
            unfit = unfit or (where, row, fits)
            continue
        first.setdefault(" / ".join(sorted(usable)), where)
        agreed = usable if agreed is None else agreed & usable
        if not agreed:
            seen = "; ".join(f"{w}: {k}" for k, w in first.items())
            raise DataError(f"data.format auto: the first rows are in different formats ({seen})",
                            label, hint="give each format its own file with its own format "
                            "(data.train: [{path: ..., format: ...}]), or set data.format")
    if agreed is None:
        if unfit is None:
            raise DataError("data.format auto: no valid row to tell the format from", label,
                            hint=_hint(stage))
        where, row, fits = unfit
        err = bad_row(where, f"data.format auto: stage {stage} reads "
                             f"{' or '.join(NEEDS[f] for f in allowed)}; this row has columns "
                             f"{_columns_of(row)} (fits: {', '.join(sorted(fits)) or 'none'})")
        raise _hinted(err, _hint(stage))
    if len(agreed) > 1:
        names = ", ".join(f"{f} ({NEEDS[f]})" for f in sorted(agreed))
        raise DataError(f"data.format auto: the columns fit several formats: {names}", label,
                        hint="set data.format to the one you mean (or map the other columns to "
                        "\"\" with data.columns)")
    return agreed.pop()


def detect(rows: Iterable[Row], stage: str, columns: dict, label: str) -> tuple[str, Iterator[Row]]:
    """(format, the rows again): the format is chosen from the first ``PEEK`` valid rows."""
    it = iter(rows)
    head: list[Row] = []
    valid = []
    for item in it:
        head.append(item)
        if not isinstance(item[1], DataError):
            valid.append(item)
            if len(valid) >= PEEK:
                break
    if not valid:  # nothing to tell from: the rows' own errors (or "no usable rows") say why
        return "", chain(head, it)
    return choose(valid, stage, columns, label), chain(head, it)


def _placeholder(value: Any) -> str | None:
    """The first <image>-style placeholder in a value's strings (depth first, in order)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "<" in v:
                m = _PLACEHOLDER.search(v)
                if m:
                    return m.group(0)
        elif isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
    return None


def media_error(row: dict, where: str, columns: dict) -> DataError | None:
    """Rows with images/videos/audios, or <image>-style placeholders in their text, are refused:
    trained as text they would teach the literal placeholder."""
    mapped = set(columns.values())
    for key in MEDIA_COLUMNS:
        if key not in mapped and row.get(key) not in (None, "", [], {}):
            return _hinted(bad_row(where, "is a media column: images, videos and audio cannot "
                                          "be trained (lmforge trains on text)", key), MEDIA_HINT)
    for key, value in row.items():
        tag = _placeholder(value)
        if tag:
            return _hinted(bad_row(where, f"contains the media placeholder {tag}, which would "
                                          "be trained as literal text", str(key)), MEDIA_HINT)
    return None
