"""One run per output directory: re-running into a directory that holds a run is an explicit
choice (issue 18, item 7).

A directory "holds a run" when it has checkpoints, a final model (weights or adapter), a
``metrics.json`` or TensorBoard event files. Before any stage writes there:

- ``train.resume`` set: continue the run (``train.resume: auto`` with nothing to resume starts
  over; the earlier attempt's TensorBoard logs are removed first, so the new curve is not drawn
  over the old one);
- ``train.overwrite: true``: the previous run's files (checkpoints, model, tokenizer, logs,
  metrics, run files) are moved into one hidden directory, then deleted (a crash half-way leaves
  that directory, removed by the next overwrite; files lmforge does not write are kept);
- neither: a ConfigError naming the directory and both choices (``lmforge validate`` reports it
  too, without loading anything).

Only the first process of a multi-process run deletes; the others meet it in the process group
set-up before anything is written.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
from pathlib import Path

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

TRASH = ".lmforge-overwritten-"
# what a run writes at the top of its output_dir (lmforge, transformers, trl, peft, trackers)
RUN_ENTRIES = (
    "checkpoint-*", ".partial-*", TRASH + "*", "logs", "runs", "wandb", "critic", "adapter",
    "predictions", "*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin",
    "adapter_model.bin", "training_args.bin", "*.gguf", "config.json", "generation_config.json",
    "adapter_config.json", "tokenizer*", "special_tokens_map.json", "vocab.json", "merges.txt",
    "added_tokens.json", "chat_template.jinja", "README.md", "metrics.json", "eval_metrics.json",
    "*_results.json", "trainer_state.json", "training_args.json", "loss.png", "data_stats.json",
    "env.json", "run_state.json", "lmforge_*.json", "lmforge_config.yaml", "predictions.jsonl",
    "base_predictions.jsonl",
    # a chained run's merged starting model (model/chain.py BASE_DIR) and its lock: made again
    # from model.path after an overwrite
    "base", ".base.lock")
FINAL_MODEL = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
               "pytorch_model.bin", "adapter_model.bin")


def _events(out: Path) -> bool:
    logs = out / "logs"
    return logs.is_dir() and next(logs.rglob("events.out.tfevents*"), None) is not None


def previous_run(out: str | Path) -> list[str]:
    """What in ``out`` shows an earlier run (empty: nothing)."""
    from lmforge.training.checkpoints import checkpoint_dirs

    out = Path(out)
    if not out.is_dir():
        return []
    found = [p.name for p in checkpoint_dirs(out)]
    found += [name for name in (*FINAL_MODEL, "metrics.json") if (out / name).is_file()]
    return found + (["logs/ (TensorBoard events)"] if _events(out) else [])


def check(cfg) -> None:
    """ConfigError when ``train.output_dir`` holds a run and the config does not say whether to
    continue it or start over."""
    t = cfg.train
    if t.resume and t.overwrite:
        raise ConfigError("train.overwrite: true contradicts train.resume (continue the run in "
                          "output_dir, or start it over: pick one)")
    if t.resume or t.overwrite:
        return
    found = previous_run(t.output_dir)
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise ConfigError(
            f"train.output_dir: '{t.output_dir}' already holds a run ({shown}): continue it with "
            "train.resume: auto, or start over with train.overwrite: true (deletes that run's "
            "checkpoints, model and logs)", hint="or choose another train.output_dir")


def _first_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _discard(out: Path, entries: list[Path]) -> None:
    """Rename ``entries`` into one hidden directory of ``out``, then delete it."""
    import tempfile

    trash = Path(tempfile.mkdtemp(prefix=TRASH, dir=out))
    for p in entries:
        os.replace(p, trash / p.name)
    shutil.rmtree(trash, ignore_errors=True)


def prepare(cfg) -> None:
    """``check``, then clear what the config asked to clear (module docstring)."""
    check(cfg)
    out = Path(cfg.train.output_dir)
    if not out.is_dir() or not _first_process():
        return
    if cfg.train.overwrite:
        doomed = [p for p in out.iterdir()
                  if any(fnmatch.fnmatchcase(p.name, pat) for pat in RUN_ENTRIES)]
        if doomed:
            log.info("train.overwrite: deleting the previous run in %s (%d entries)", out,
                     len(doomed))
            _discard(out, doomed)
        kept = sorted(p.name for p in out.iterdir())
        if kept:
            log.info("train.overwrite: kept %s in %s (not written by a run)", ", ".join(kept), out)
    elif cfg.train.resume == "auto" and _events(out):
        from lmforge.training.checkpoints import latest_complete

        if latest_complete(out) is None:
            log.info("train.resume: auto: nothing to resume in %s; removing the earlier "
                     "attempt's TensorBoard logs (the run starts over)", out)
            _discard(out, [out / "logs"])
