"""What a stage returns: where the run was saved, its metrics and the trainer's log history."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunResult:
    output_dir: Path
    metrics: dict = field(default_factory=dict)
    log_history: list[dict] = field(default_factory=list)  # trainer.state.log_history
