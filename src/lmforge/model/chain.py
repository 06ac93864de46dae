"""Stage chaining: a run directory as ``model.path`` means "continue from that run".

SFT -> DPO/KTO/ORPO/PPO/GRPO (or SFT -> SFT) is the usual workflow. A run that trained a full model
saved a model directory, which loads like any other. A run that trained a peft adapter saved only
the adapter; its base is named in its ``lmforge_config.yaml``. Here the earlier run's adapter is
merged into its base (in float32, exactly as ``lmforge export --merge`` does it) and the merged
model is saved once into the new run, in ``<output_dir>/base/``; ``resolve`` then points the run's
``model.path`` there, before the stage loads anything. Why a copy on disk and not only a merge in
memory:

- the new stage's model IS the earlier run's model, for every model the stage builds: the policy,
  the reference of dpo/kto/ppo/grpo (the policy with its new adapter disabled, or a frozen copy
  of the base), a separate PPO critic, a QLoRA base (quantized from the merged weights);
- the result is loadable everywhere: a new adapter's ``adapter_config.json`` names
  ``<output_dir>/base`` as its base, and ``lmforge_config.yaml`` records ``model.path`` =
  ``<output_dir>/base``, so plain transformers + peft, ``lmforge chat``/``info``/``export`` and
  every later chained stage all load the chained model, and the run does not depend on the
  earlier run staying where it was (``base/lmforge_chain.json`` records where it came from);
- re-running with ``train.resume: auto`` reuses ``base/`` when it was merged from the same
  adapter files, and refuses when they changed (the checkpoints belong to the old base).

The cost is one copy of the base in the new run. Adapters that do not change weights (prompt,
prefix and P-tuning) cannot be merged: such a run is refused, with the ``adapter.path`` way of
continuing it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)

BASE_DIR = "base"  # <output_dir>/base: the earlier run's model, merged
MARKER = "lmforge_chain.json"


def adapter_dir(path: str | None) -> Path | None:
    """``path`` when it is a directory holding a peft adapter (a run's output_dir, a checkpoint
    in it, a bare adapter), else None. ``builtin:`` names and hub ids are never adapters."""
    if not path or ":" in path.split("/")[0]:
        return None
    p = Path(path)
    return p if p.is_dir() and (p / "adapter_config.json").is_file() else None


def problems(cfg) -> list[str]:
    """What ``lmforge validate`` reports about chaining (nothing for a mergeable run/adapter)."""
    out = []
    src_dir = adapter_dir(cfg.model.path)
    if src_dir is not None:
        try:
            source(src_dir)
        except ConfigError as exc:
            out += exc.problems
    ref = getattr(cfg.method(), "reference_model", None)
    if adapter_dir(ref) is not None:
        out.append(f"{cfg.stage}.reference_model: '{ref}' holds a peft adapter, not a model "
                   "(hint: export it merged first: lmforge export RUN --merge --out DIR, and name "
                   "DIR; or leave reference_model unset and set model.path to the run: then the "
                   "reference is that run's model)")
    return out


def source(path: Path):
    """The earlier run as ``export.source.Source``; ConfigError when it cannot be continued."""
    from lmforge.errors import ModelError
    from lmforge.export.source import inspect_source

    try:
        src = inspect_source(path)
    except ModelError as exc:
        raise ConfigError(f"model.path: '{path}' holds a peft adapter whose base cannot be found: "
                          f"{exc.message}") from exc
    if not src.mergeable:
        hint = (f"to continue training that {src.method} adapter, set model.path to its base "
                f"('{src.base.path}') and adapter.path: {path} (adapter.type {src.method})")
        raise ConfigError(f"model.path: '{path}' holds a {src.method} adapter, which adds virtual "
                          f"tokens instead of changing weights and cannot be merged into its base "
                          f"to start a new stage (hint: {hint})")
    base = adapter_dir(src.base.path)
    if src.base.path.startswith(("/", ".")) and not Path(src.base.path).exists():
        raise ConfigError(f"model.path: the base of '{path}', '{src.base.path}', does not exist "
                          "(hint: export that run merged where its base exists: lmforge export "
                          "RUN --merge --base BASE --out DIR, and continue from DIR)")
    if base is not None:  # made before chaining existed, on an adapter loaded unmerged
        raise ConfigError(f"model.path: '{path}' was trained with model.path '{base}', a peft "
                          "adapter that lmforge then loaded without merging it, so its result "
                          "is not the model it claims to continue (hint: train that stage again: "
                          "now model.path continues from the run properly)")
    return src


def fingerprint(src) -> dict:
    """Identifies the adapter files merged: path, adapter config and the weights' size/mtime."""
    files = {}
    for f in sorted(src.path.glob("adapter_model.*")):
        st = f.stat()
        files[f.name] = [st.st_size, st.st_mtime_ns]
    return {"source": str(src.path.resolve()), "base": src.base.path, "method": src.method,
            "stage": src.stage, "adapter_config": src.adapter_config, "files": files}


def _same_source(marker: Path, want: dict) -> bool | None:
    """True/False: ``base/`` was merged from these adapter files or not; None: no finished base."""
    if not marker.is_file():
        return None
    try:
        saved = json.loads(marker.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return {k: saved.get(k) for k in want} == json.loads(json.dumps(want))


def materialize(src, target: Path, dtype: str = "auto", resuming: bool = False) -> Path:
    """``target`` holding the earlier run's adapter merged into its base (made once)."""
    from lmforge.export.merge import export
    from lmforge.utils.locks import file_lock

    want = fingerprint(src)
    target.parent.mkdir(parents=True, exist_ok=True)
    # several processes of one run: the first merges, the others find it done
    with file_lock(target.parent / f".{target.name}.lock"):
        same = _same_source(target / MARKER, want)
        if same:
            log.info("chained run: reusing %s (merged from %s)", target, src.path)
            return target
        if same is False and resuming:
            raise ConfigError(f"train.resume: {target} was merged from another adapter than "
                              f"model.path '{src.path}' now holds; its checkpoints belong to that "
                              "base", "resume with the model.path the run started from, or start "
                              "a new output_dir")
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("chained run: merging the %s adapter of %s into its base %s -> %s", src.method,
                 src.path, src.base.path, target)
        export(src.path, tmp, merge=True, dtype=dtype, dequantize=True)
        (tmp / MARKER).write_text(json.dumps(want, indent=2), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


def resolve(cfg):
    """``cfg`` unchanged, or, when ``model.path`` is a run with a peft adapter, ``cfg`` with
    ``model.path`` = ``<output_dir>/base`` holding that run's model merged (see the docstring)."""
    path = adapter_dir(cfg.model.path)
    if path is None:
        return cfg
    src = source(path)
    target = (Path(cfg.train.output_dir) / BASE_DIR).resolve()
    materialize(src, target, cfg.model.dtype, resuming=bool(cfg.train.resume))
    model = cfg.model.model_copy(update={"path": str(target), "gguf_file": None,
                                         "revision": None})
    log.info("model.path %s is a %s run: continuing from its model (saved in %s)", path,
             src.method, target)
    return cfg.model_copy(update={"model": model})
