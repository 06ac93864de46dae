"""Show encoded examples as text with the trained spans marked (``lmforge data preview``).

Consecutive tokens with the same trained/untrained state are decoded together, so what is shown
is exactly what the model sees, with the trained part highlighted: rich colours on a terminal,
``⟦...⟧`` markers otherwise (and in tests).
"""

from __future__ import annotations

from lmforge.data.encode import IGNORE

OPEN, CLOSE = "⟦", "⟧"


def segments(input_ids, labels) -> list[tuple[bool, list[int]]]:
    """[(trained, ids)] runs of consecutive tokens."""
    out: list[tuple[bool, list[int]]] = []
    for tok, lab in zip(input_ids, labels):
        trained = lab != IGNORE
        if out and out[-1][0] == trained:
            out[-1][1].append(tok)
        else:
            out.append((trained, [tok]))
    return out


def _decode(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def marked_text(tokenizer, input_ids, labels) -> str:
    """The decoded example with trained spans between ⟦ and ⟧."""
    return "".join(f"{OPEN}{_decode(tokenizer, ids)}{CLOSE}" if trained else
                   _decode(tokenizer, ids) for trained, ids in segments(input_ids, labels))


def rich_text(tokenizer, input_ids, labels):
    from rich.text import Text

    text = Text()
    for trained, ids in segments(input_ids, labels):
        text.append(_decode(tokenizer, ids), style="bold green" if trained else "dim")
    return text


def stats_rows(stats: dict) -> list[tuple[str, str]]:
    rows = []
    for key, value in stats.items():
        if key in ("length_histogram", "eval"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        rows.append((key, str(value)))
    return rows


def histogram_lines(hist: list[dict], width: int = 40) -> list[str]:
    top = max((h["count"] for h in hist), default=0) or 1
    lines = []
    for h in hist:
        bar = "#" * (max(1, h["count"] * width // top) if h["count"] else 0)
        lines.append(f"{h['range'][0]:>6}-{h['range'][1]:<6} {bar} {h['count']}")
    return lines
