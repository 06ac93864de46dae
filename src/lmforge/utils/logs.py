"""Logging set-up: rich handler (secrets masked; lmforge's own records and errors unless
--debug / LMFORGE_VERBOSE=1, utils/quiet.py), rank-0 only in distributed runs."""

from __future__ import annotations

import logging
import os


def rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def setup(level: int = logging.INFO, debug: bool = False) -> None:
    from rich.logging import RichHandler

    if rank() != 0:
        level = logging.WARNING
    from lmforge.utils.quiet import console_filter
    from lmforge.utils.secrets import install_log_filter

    handler = RichHandler(show_path=False, rich_tracebacks=False)
    install_log_filter(handler)  # API keys / tokens never reach the console or a log file
    own = console_filter(debug)  # quiet by default: lmforge's lines (utils/quiet.py)
    if own is not None:
        handler.addFilter(own)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler],
                        force=True)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import warnings

    # peft reads `model.is_gradient_checkpointing`, which transformers 5 deprecates with a
    # FutureWarning on every adapter attach: upstream noise a user can do nothing about
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated",
                            category=FutureWarning)
