"""Resource faults: out-of-memory and a full disk become TrainingErrors that say what to do.

``resource_errors`` wraps a whole stage (``stages.run``): out-of-memory anywhere (loading,
training, evaluation) becomes a TrainingError whose hint is computed from the config (a smaller
batch with more accumulation, gradient checkpointing, LoRA/QLoRA, a shorter max_length or packed
block); a full disk becomes one naming the path being written. ``saving_errors`` wraps one
checkpoint save: it removes the half-written staging directory and names the newest complete
checkpoint, which is untouched. Matching is by exception type and by message, through the
exception chain, because libraries wrap these errors (torch.save raises RuntimeError('...file
write failed'), safetensors its own SafetensorError, CUDA torch.OutOfMemoryError).
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from pathlib import Path

from lmforge.errors import LmforgeError, TrainingError


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory",
             "cublas_status_alloc_failed", "failed to allocate")
_DISK_TEXT = ("no space left on device", "storagefull", "disk quota exceeded",
              "file write failed", "unexpected pos")


def is_oom(exc: BaseException) -> bool:
    for e in _chain(exc):
        if isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError":
            return True
        if isinstance(e, RuntimeError) and any(t in str(e).lower() for t in _OOM_TEXT):
            return True
    return False


def is_disk_full(exc: BaseException) -> bool:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(t in str(e).lower() for t in _DISK_TEXT):
            return True
    return False


def oom_advice(cfg) -> str:
    """Concrete changes for this config, most effective first."""
    t, d, m, a = cfg.train, cfg.data, cfg.model, cfg.adapter
    tips = []
    if t.batch_size > 1:
        tips.append(f"train.batch_size: {max(1, t.batch_size // 2)} with train.grad_accum: "
                    f"{t.grad_accum * 2} (same effective batch)")
    if not m.gradient_checkpointing:
        tips.append("model.gradient_checkpointing: true")
    if a.type == "full" or a.type == "freeze":
        tips.append("adapter.type: lora (or qlora: a 4-bit base)")
    elif a.type == "lora":
        tips.append("adapter.type: qlora (a 4-bit base model)")
    if d.max_length and d.max_length > 256:
        what = "the packed block length" if d.packing else "the longest example"
        tips.append(f"data.max_length: {d.max_length // 2} ({what})")
    if t.precision in ("fp32",) or (t.precision == "auto" and m.dtype == "float32"):
        tips.append("train.precision: bf16 / model.dtype: bfloat16 on a GPU that has it")
    if t.eval_batch_size and t.eval_batch_size > 1:
        tips.append(f"train.eval_batch_size: {max(1, t.eval_batch_size // 2)}")
    return "; ".join(tips) or "a machine with more memory"


def translate(exc: BaseException, cfg=None) -> LmforgeError | None:
    """An LmforgeError for out-of-memory / disk-full exceptions, else None."""
    if isinstance(exc, LmforgeError):
        return None
    if is_oom(exc):
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return TrainingError(f"out of memory ({type(exc).__name__}: {first})",
                             "try " + (oom_advice(cfg) if cfg is not None else
                                       "a smaller train.batch_size, model.gradient_checkpointing:"
                                       " true, adapter.type: lora/qlora, a shorter "
                                       "data.max_length"))
    if is_disk_full(exc):
        where = next((e.filename for e in _chain(exc) if getattr(e, "filename", None)), None)
        at = f" writing {where}" if where else ""
        return TrainingError(f"disk full{at} ({str(exc)[:200]})",
                             "free space (old runs, checkpoints, $LMFORGE_CACHE), set "
                             "train.save_total_limit, or move train.output_dir to a larger disk")
    return None


@contextlib.contextmanager
def resource_errors(cfg=None):
    """Out-of-memory and disk-full exceptions become TrainingErrors with advice."""
    try:
        yield
    except (MemoryError, RuntimeError, OSError) as exc:
        err = translate(exc, cfg)
        if err is None:
            raise
        raise err from exc


@contextlib.contextmanager
def saving_errors(final: Path, staging: Path, trainer):
    """A failed checkpoint save removes its staging directory and says what is still there."""
    try:
        yield
    except BaseException as exc:
        if trainer.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(exc, Exception) or isinstance(exc, LmforgeError):
            raise
        from lmforge.training.checkpoints import latest_complete

        if is_disk_full(exc) or isinstance(exc, OSError):
            kept = latest_complete(final.parent)
            full = "disk full" if is_disk_full(exc) else f"{type(exc).__name__}: {exc}"
            raise TrainingError(
                f"could not save {final} ({full}); "
                + (f"the newest complete checkpoint is still {kept}" if kept else
                   "no earlier checkpoint exists"),
                "free space or set train.save_total_limit, then rerun with train.resume: auto"
            ) from exc
        raise
