"""Logging set-up: rich handler, rank-0 only in distributed runs."""

from __future__ import annotations

import logging
import os


def rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def setup(level: int = logging.INFO) -> None:
    from rich.logging import RichHandler

    if rank() != 0:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]",
                        handlers=[RichHandler(show_path=False, rich_tracebacks=False)], force=True)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
