"""Mix several sources of one split, and split an eval fraction off the training sources.

Rules (deterministic for a given ``data.seed``):
- a source with ``samples: N`` contributes exactly N rows: whole copies of the source while N is
  larger, then a random subset without repetition;
- sources with ``weight`` share a budget equal to the sum of their row counts, each getting
  ``budget * weight / sum(weights)`` rows the same way (so weights up- or down-sample);
- a source with neither contributes each of its rows once.
A single plain source keeps its file order; anything mixed is shuffled.
The eval fraction is taken from the distinct rows before mixing, so an up-sampled training row
never also appears in the eval set.
"""

from __future__ import annotations

import random
from typing import Sequence

from lmforge.errors import DataError


def take(rows: list, n: int, rng: random.Random) -> list:
    """``n`` rows: whole copies while n > len(rows), then a random subset without repetition."""
    if not rows:
        return []
    copies, rest = divmod(n, len(rows))
    return rows * copies + rng.sample(rows, rest)


def counts(sizes: Sequence[int], weights: Sequence[float | None],
           samples: Sequence[int | None]) -> list[int]:
    """Rows each source contributes."""
    budget = sum(n for n, w in zip(sizes, weights) if w is not None)
    total_w = sum(w for w in weights if w is not None)
    out = []
    for n, w, s in zip(sizes, weights, samples):
        if s is not None:
            out.append(s)
        elif w is not None:
            out.append(max(1, round(budget * w / total_w)))
        else:
            out.append(n)
    return out


def require_rows(parts: list[list], plans: list) -> None:
    """A source that gave no examples is an error."""
    for rows, plan in zip(parts, plans):
        if not rows:
            raise DataError("has no usable rows", plan.label,
                            hint="check the file, or remove it from the list")


def mix(parts: list[list], plans: list, seed: int) -> list:
    require_rows(parts, plans)
    mixed = any(p.weight is not None or p.samples is not None for p in plans)
    if len(parts) == 1 and not mixed:
        return list(parts[0])
    rng = random.Random(seed)
    n = counts([len(r) for r in parts], [p.weight for p in plans], [p.samples for p in plans])
    out = []
    for rows, k in zip(parts, n):
        out += take(rows, k, rng)
    rng.shuffle(out)
    return out


def split_eval(parts: list[list], fraction: float, seed: int) -> tuple[list[list], list]:
    """Move ``fraction`` of the distinct rows (at least one) out of ``parts`` into an eval list."""
    index = [(i, j) for i, rows in enumerate(parts) for j in range(len(rows))]
    if len(index) < 2:
        raise DataError(f"data.eval: {fraction} asks for an eval split, but there are only "
                        f"{len(index)} training rows", hint="add data or give eval files")
    rng = random.Random(seed)
    rng.shuffle(index)
    n_eval = min(len(index) - 1, max(1, round(len(index) * fraction)))
    chosen = set(index[:n_eval])
    evals = [parts[i][j] for i, j in sorted(chosen)]
    kept = [[r for j, r in enumerate(rows) if (i, j) not in chosen] for i, rows in
            enumerate(parts)]
    return kept, evals
