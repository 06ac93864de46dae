"""Training curves as PNG from a Trainer's ``log_history``."""

from __future__ import annotations

from pathlib import Path

LABELS = {"loss": "train loss", "eval_loss": "eval loss"}


def curves(log_history: list[dict], keys: tuple[str, ...]) -> dict[str, tuple[list, list]]:
    out: dict[str, tuple[list, list]] = {}
    for entry in log_history:
        for key in keys:
            if key in entry and "step" in entry:
                xs, ys = out.setdefault(key, ([], []))
                xs.append(entry["step"])
                ys.append(entry[key])
    return out


def plot_curves(log_history: list[dict], path: str | Path,
                keys: tuple[str, ...] = ("loss", "eval_loss"), title: str = "training") -> bool:
    """Write a PNG with one line per key; returns False when there is nothing to plot."""
    data = curves(log_history, keys)
    if not data:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key, (xs, ys) in data.items():
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3,
                label=LABELS.get(key, key))
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
