"""Portable names for the base model a saved adapter records (``adapter_config.json``'s
``base_model_name_or_path``), and their resolution when lmforge loads the adapter again.

peft records whatever ``from_pretrained`` was given, which for lmforge was the resolved location:
``builtin:tiny-llama`` became ``<home>/.cache/lmforge/models/tiny-llama``, a relative path became
one relative to the directory training started in. Such an artifact names this machine. Instead
the adapter names its base as the user named it (``base_name``):

- ``builtin:<name>``: kept. Built-ins are built from a fixed recipe and seed (utils/tiny.py) or
  converted from a pinned package, so the name means the same weights on every machine.
- a hub id: kept (with ``model.revision`` in peft's own ``revision`` field).
- a local directory inside the run directory or beside it (inside the run's parent, e.g. a
  chained run's ``<run>/base`` or ``runs/sft-merged`` next to ``runs/dpo``): a path relative to
  the run directory, always starting with ``./`` or ``../`` so that it cannot be read as a hub
  id. The run and its base then move together.
- any other local directory: its absolute path (a path relative to wherever training was started
  would mean nothing later).
- a GGUF base: peft's own value (the converted directory), since the GGUF name alone is not a
  model ``from_pretrained`` can load; the run's ``lmforge_config.yaml`` names the GGUF.

Why not keep the absolute path as well, in an lmforge field: peft's config classes warn about
every key they do not know, on every load; and a second, machine-bound name would be what tools
pick up. What the run was trained from on this machine stays in ``lmforge_config.yaml``.

Loading (``resolve_base``): lmforge's loaders (infer/loading.py, export/source.py and through it
model/chain.py, ``info``, ``eval``) resolve ``builtin:`` names into the cache (building the model
when missing) and relative paths against the adapter directory, then its parent (a
``checkpoint-N`` or the ``adapter/`` of a reward model inside the run). Plain peft cannot resolve
``builtin:`` or a run-relative path by itself: load the base explicitly and attach the adapter
(``PeftModel.from_pretrained(base, RUN)``), as every run's README.md shows;
``AutoPeftModelForCausalLM.from_pretrained(RUN)`` works as is for hub ids and absolute paths (and
for a relative one when started in the run directory). ``lmforge export RUN --merge`` gives a
standalone model that needs no base at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from lmforge.utils.builtin import is_builtin

RELATIVE = ("./", "../")


def base_name(model_cfg, run_dir: str | Path) -> str | None:
    """The portable name for ``model_cfg``'s base, seen from ``run_dir``; None: keep peft's."""
    path = model_cfg.path
    if model_cfg.gguf_file or path.endswith(".gguf"):
        return None
    if is_builtin(path):
        return path
    local = Path(path).expanduser()
    if not local.exists():
        return path  # a hub id (validate has checked it is in the cache)
    full = local.resolve()
    try:
        rel = Path(os.path.relpath(full, Path(run_dir).resolve()))
    except ValueError:  # another drive (Windows)
        return str(full)
    if rel == Path("."):
        return "."
    if rel.parts[0] != "..":
        return "./" + rel.as_posix()  # inside the run directory
    if len(rel.parts) > 1 and ".." not in rel.parts[1:]:
        return rel.as_posix()  # beside the run: inside the run's parent directory
    return str(full)


def is_relative(name: str) -> bool:
    return name in (".", "..") or name.startswith(RELATIVE)


def resolve_base(name: str, adapter_dir: str | Path) -> str:
    """What a loader passes on for a recorded base ``name`` (see the module docstring): a
    relative path as an absolute one (found beside the adapter or its parent); ``builtin:``
    names, hub ids and absolute paths unchanged (the model loader resolves ``builtin:``)."""
    if not is_relative(name):
        return name
    here = Path(adapter_dir)
    for d in (here, here.parent):
        if (d / name).is_dir():
            return str((d / name).resolve())
    return str((here / name).resolve())  # missing: the loader names this path in its error


def rebase(name: str, adapter_dir: str | Path, new_dir: str | Path) -> str:
    """The name to write into a copy of the adapter in ``adapter_dir`` made in ``new_dir``."""
    if not is_relative(name):
        return name
    from lmforge.config.model import ModelConfig

    resolved = resolve_base(name, adapter_dir)
    return base_name(ModelConfig(path=resolved), new_dir) or resolved


class _WritesPortableBase:
    """Mixed into a peft config's class: ``to_dict`` (what ``save_pretrained`` writes to
    adapter_config.json) names the base portably, while the attribute keeps the resolved
    directory that peft's own save-time checks read (it looks for ``<base>/config.json`` to tell
    whether the vocabulary was resized, and would warn, or ask the hub, about ``builtin:``)."""

    lmforge_base: str | None = None
    _lmforge_original: type = object

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.lmforge_base:
            out["base_model_name_or_path"] = self.lmforge_base
        return out

    def __reduce__(self):  # copy/pickle: rebuilt through the module-level _restore
        return _restore, (self._lmforge_original, dict(self.__dict__))


_CLASSES: dict[type, type] = {}


def _portable_class(cls: type) -> type:
    if issubclass(cls, _WritesPortableBase):
        return cls
    if cls not in _CLASSES:
        _CLASSES[cls] = type(cls.__name__, (_WritesPortableBase, cls),
                             {"_lmforge_original": cls, "__qualname__": cls.__qualname__})
    return _CLASSES[cls]


def _restore(cls: type, state: dict):
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    obj.__class__ = _portable_class(cls)
    return obj


def name_base(model, name: str | None) -> None:
    """Make every adapter of a PeftModel write ``name`` as its base (``save_pretrained``:
    checkpoints and the final save alike); no-op for a plain model or ``name`` None."""
    configs = getattr(model, "peft_config", None)
    if not name or not isinstance(configs, dict):
        return
    # in memory: the directory the base was loaded from (an adapter continued from disk
    # carries the portable name there), for peft's save-time checks
    loaded = getattr(model.get_base_model(), "name_or_path", None)
    for config in configs.values():
        config.__class__ = _portable_class(type(config))
        config.lmforge_base = name
        if loaded:
            config.base_model_name_or_path = loaded


def moved_run_model(model_cfg, adapter_dir: str | Path):
    """``model_cfg`` (a run's ``model:``), or a copy naming the base its adapter records when
    the recorded local directory is gone but the adapter's relative name finds it: the run was
    moved or copied together with a base inside or beside it."""
    path = model_cfg.path
    if is_builtin(path) or model_cfg.gguf_file or Path(path).expanduser().exists():
        return model_cfg
    here = Path(adapter_dir)
    for d in (here, here.parent):
        try:
            import json

            named = json.loads((d / "adapter_config.json").read_text(encoding="utf-8")).get(
                "base_model_name_or_path")
        except (OSError, ValueError):
            continue
        if isinstance(named, str) and is_relative(named):
            found = resolve_base(named, d)
            if Path(found).is_dir():
                return model_cfg.model_copy(update={"path": found})
    return model_cfg
