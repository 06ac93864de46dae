"""Rich progress bars for long generation loops (``lmforge eval``/``predict``, benchmarks).

``bar(total, description)`` is a context manager that yields an ``advance(n)`` callable; it draws
on stderr, and draws nothing when ``enabled`` is false or stderr is not a terminal.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def bar(total: int | None, description: str, enabled: bool = True
        ) -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda n=1: None
        return
    progress = Progress(TextColumn("[bold blue]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console, transient=False)
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
