from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunResult:
    output_dir: Path
    metrics: dict = field(default_factory=dict)
