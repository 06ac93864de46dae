"""Quiet by default: what third-party libraries print on every command (bitsandbytes' offline
``kernels-community`` warnings, DeepSpeed's accelerator banner when it is imported but unused,
datasets' ``Map:`` bars, transformers' ``Loading weights`` / ``Writing model shards`` bars,
its ``LOAD REPORT`` table and its wandb-offline print, their Future/Deprecation/User warnings)
is silenced, so that a run's
output is lmforge's own lines. ``--debug`` or ``LMFORGE_VERBOSE=1`` shows all of it.

``apply`` runs first thing in the CLI: environment defaults (read by the libraries when they
are imported, and inherited by worker processes; a value the user set is kept), logger levels
and filters, and warning filters that spare lmforge's own modules (a deprecation lmforge causes
is still shown: it is ours to fix).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from importlib.abc import MetaPathFinder

VERBOSE_ENV = "LMFORGE_VERBOSE"
# library environment switches: progress bars off, transformers' log level to errors
ENV = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
       "TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
# loggers whose warnings are noise on a working install (errors still show)
QUIET_LOGGERS = ("bitsandbytes", "kernels", "DeepSpeed", "accelerate", "datasets", "peft",
                 "trl", "torch.distributed.elastic", "torchao",
                 "torch.utils._pytree")  # torchao registering its enums with torch.compile


# modules that print (not log) when imported: transformers' trackers module prints
# "[INFO] Running in WANDB offline mode" whenever WANDB_MODE=offline
PRINT_ON_IMPORT = frozenset({"transformers.integrations.integration_utils"})


class _SilentImport(MetaPathFinder):
    """Runs the modules of PRINT_ON_IMPORT with their standard output discarded."""

    def find_spec(self, name, path=None, target=None):
        if name not in PRINT_ON_IMPORT:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module

                def exec_module(module, run=run):
                    with contextlib.redirect_stdout(io.StringIO()):
                        run(module)

                spec.loader.exec_module = exec_module
                return spec
        return None


def verbose(debug: bool = False) -> bool:
    return debug or os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes")


class _OwnLines(logging.Filter):
    """On the console: lmforge's records, and errors from anyone."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("lmforge") or record.levelno >= logging.ERROR \
            or record.name == "root"


def console_filter(debug: bool = False) -> logging.Filter | None:
    """The filter utils/logs.setup puts on its console handler (None when verbose)."""
    return None if verbose(debug) else _OwnLines()


def apply(debug: bool = False) -> None:
    if verbose(debug):
        os.environ[VERBOSE_ENV] = "1"  # worker processes (torchrun) stay verbose too
        return
    for name, value in ENV.items():
        os.environ.setdefault(name, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # DeepSpeed (re)configures its own logger when imported; a filter survives that
    logging.getLogger("DeepSpeed").addFilter(
        lambda r: not r.getMessage().startswith("Setting accelerator to"))
    if not any(isinstance(f, _SilentImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SilentImport())
    # third-party warnings; lmforge's own modules keep theirs
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!lmforge)")
    # libraries imported before this ran read their switches already: tell them directly
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
