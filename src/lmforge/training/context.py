"""The one small object a stage recipe carries from step to step (DESIGN.md: "passing one small
run context"): the validated config, the run directory, the tokenizer, the chat template, the
callbacks given to ``stages.run`` and the device facts. ``start`` makes it; the shared runtime
(``trainer.build_trainer``, ``common.save_final``/``finish``, ``preference_common``) takes it
instead of five-tuples and long parameter lists."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmforge.config.run import RunConfig


@dataclass
class RunContext:
    cfg: RunConfig
    out: Path
    tokenizer: Any
    template: str | None  # the chat template trained with (None: raw text, stage pt)
    callbacks: tuple = field(default=())

    @functools.cached_property
    def facts(self):
        """GPU or CPU, dtype, attention, kernels, threads: decided once (training/device.py)."""
        from lmforge.training.device import decide

        return decide(self.cfg)

    def method(self):
        """The method block of the run's stage (defaults when the YAML omits it)."""
        return self.cfg.method()


def start(cfg: RunConfig, callbacks=(), *, chat: bool = True) -> RunContext:
    """Torch set-up (process group, threads, seed), the run directory with the resolved config
    and env.json, the tokenizer, and the chat template (``chat=False``: none, raw text)."""
    from lmforge.data.templates import resolve_template
    from lmforge.model.loader import load_tokenizer
    from lmforge.training.common import setup_torch
    from lmforge.utils.rundir import write_run_files

    setup_torch(cfg)
    out = write_run_files(cfg)
    tokenizer = load_tokenizer(cfg.model)
    template = resolve_template(cfg.model.template, tokenizer,
                                cfg.data.template_system) if chat else None
    return RunContext(cfg, out, tokenizer, template, tuple(callbacks))
