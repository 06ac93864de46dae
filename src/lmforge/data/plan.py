"""Resolve ``data.train`` / ``data.eval`` into source plans: which files, read in which format
with which column mapping, mixed how. Registry names (LLaMA-Factory) and per-source overrides
are resolved here, so the readers and converters see one uniform description.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lmforge.config.data import SourceSpec
from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError


@dataclass(frozen=True)
class SourcePlan:
    path: str
    format: str
    columns: dict[str, str] = field(default_factory=dict)
    weight: float | None = None
    samples: int | None = None
    name: str = ""  # registry name, for messages
    check_columns: bool = True  # registry mappings are generated, not typed by the user

    @property
    def label(self) -> str:
        return self.name or self.path


def _items(spec) -> list[SourceSpec]:
    if spec is None or isinstance(spec, float):
        return []
    items = spec if isinstance(spec, list) else [spec]
    return [SourceSpec(path=i) if isinstance(i, str) else i for i in items]


def resolve(cfg: RunConfig, split: str) -> list[SourcePlan]:
    """The plans of ``split`` ('train' or 'eval'); empty when the split has no files."""
    data = cfg.data
    items = _items(getattr(data, split))
    if not data.registry:
        return [SourcePlan(i.path, i.format or data.format,
                           dict(i.columns if i.columns is not None else data.columns),
                           i.weight, i.samples) for i in items]
    from lmforge.data.registry import entry, read_registry

    info = read_registry(data.registry)
    plans = []
    for item in items:
        e = entry(info, item.path, data.registry, cfg.stage)
        if item.format or item.columns:
            raise ConfigError(f"data.{split}: '{item.path}' comes from data.registry, whose "
                              "entry sets the format and columns (edit the entry instead)")
        samples = item.samples if item.samples is not None else (
            None if item.weight is not None else e.samples)
        plans.append(SourcePlan(e.path, e.format, e.columns, item.weight, samples, e.name,
                                check_columns=False))
    return plans


def file_paths(plans: list[SourcePlan]) -> list[str]:
    return [p.path for p in plans]
