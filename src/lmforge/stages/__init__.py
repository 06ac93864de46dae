"""Stage registry: ``run(cfg)`` looks the stage up in a table, no if/elif ladders."""

from __future__ import annotations

import importlib

from lmforge.config.run import RunConfig
from lmforge.config.stages import STAGE_TABLE
from lmforge.errors import ConfigError

# stage name -> recipe module, from the stage table (config/stages.py)
STAGES: dict[str, str] = {name: spec.recipe for name, spec in STAGE_TABLE.items()}


def run(cfg: RunConfig, *, callbacks=()):
    """Run ``cfg.stage``. ``callbacks`` (transformers ``TrainerCallback`` objects: plugins, sweep
    pruning, tests that interrupt a run) are added to the stage's trainer; stage ppo, which has
    its own loop, fires the events that loop has and refuses callbacks needing others."""
    module = STAGES.get(cfg.stage)
    if module is None:
        raise ConfigError(f"stage: '{cfg.stage}' is not implemented yet (available: "
                          f"{', '.join(sorted(STAGES))})")
    from lmforge.distributed.ranks import is_main, single_process_rendezvous
    from lmforge.model.chain import resolve
    from lmforge.training import output_dir
    from lmforge.training.compat import deepspeed_import_skipped
    from lmforge.training.resource_faults import resource_errors
    from lmforge.utils.rundir import recorded_outcome

    output_dir.prepare(cfg)  # a directory holding a run: resume, overwrite, or refuse

    # out of memory / disk full: an error with advice, no traceback; DeepSpeed without a
    # launcher: a 1-process launcher environment (distributed/ranks.py); run_state.json says
    # done / failed (with the error) / interrupted once the run this process started ends
    with recorded_outcome(cfg.train.output_dir), resource_errors(cfg), \
            single_process_rendezvous(bool(cfg.train.deepspeed)), \
            deepspeed_import_skipped(bool(cfg.train.deepspeed)):
        cfg = resolve(cfg)  # model.path = an earlier run: continue from its model (chain.py)
        result = importlib.import_module(module).run(cfg, callbacks=tuple(callbacks))
        if is_main():  # README.md: base, data, settings, metrics, how to load (export/card.py)
            from lmforge.export.card import write_run_card

            write_run_card(result.output_dir)
        return result
