"""Stage registry: ``run(cfg)`` looks the stage up in a table, no if/elif ladders."""

from __future__ import annotations

import importlib

from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError

STAGES: dict[str, str] = {
    "pt": "lmforge.stages.pt",
    "sft": "lmforge.stages.sft",
    "rm": "lmforge.stages.rm",
    "dpo": "lmforge.stages.dpo",
    "kto": "lmforge.stages.kto",
    "orpo": "lmforge.stages.orpo",
    "ppo": "lmforge.stages.ppo",
    "grpo": "lmforge.stages.grpo",
}


def run(cfg: RunConfig):
    module = STAGES.get(cfg.stage)
    if module is None:
        raise ConfigError(f"stage: '{cfg.stage}' is not implemented yet (available: "
                          f"{', '.join(sorted(STAGES))})")
    from lmforge.training.resource_faults import resource_errors

    with resource_errors(cfg):  # out of memory / disk full: an error with advice, no traceback
        return importlib.import_module(module).run(cfg)
