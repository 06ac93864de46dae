"""What an export starts from: a run directory, a bare peft adapter, or a full model directory.

A run directory holds ``lmforge_config.yaml`` (the resolved run config: ``model:`` says how the
base was loaded, ``adapter:`` how it was trained) next to the saved adapter or model; a checkpoint
directory inside a run finds the config one level up. A bare adapter names its base in
``adapter_config.json`` (``base_model_name_or_path``), which ``--base`` can override.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lmforge.config.adapter import AdapterConfig
from lmforge.config.constants import RUN_CONFIG_FILE
from lmforge.config.model import ModelConfig
from lmforge.errors import ConfigError, ModelError

RUN_CONFIG = RUN_CONFIG_FILE


@dataclass
class Source:
    path: Path
    kind: str  # "adapter" or "model"
    base: ModelConfig  # how to load the base (for kind "model": the model itself)
    method: str  # full, freeze, lora, dora, qlora, adalora, prompt_tuning, p_tuning, ...
    adapter_config: dict = field(default_factory=dict)
    run_adapter: AdapterConfig | None = None
    run_dir: Path | None = None
    stage: str | None = None

    @property
    def peft_type(self) -> str | None:
        return self.adapter_config.get("peft_type")

    @property
    def mergeable(self) -> bool:
        from lmforge.model.adapters import MERGEABLE

        return self.kind == "adapter" and self.peft_type in MERGEABLE

    @property
    def quantized_base(self) -> bool:
        """The adapter was trained on a bitsandbytes-quantized base (QLoRA)."""
        return self.run_adapter is not None and self.run_adapter.type == "qlora"

    @property
    def has_tokenizer(self) -> bool:
        return (self.path / "tokenizer_config.json").is_file()


def _run_tree(path: Path) -> tuple[dict | None, Path | None]:
    import yaml

    for d in (path, path.parent):
        f = d / RUN_CONFIG
        if f.is_file():
            tree = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
            return (tree if isinstance(tree, dict) else {}), d
    return None, None


def _section(cls, tree: dict | None, key: str, where: Path | None):
    if not tree or not isinstance(tree.get(key), dict):
        return None
    try:
        return cls.model_validate(tree[key])
    except ValueError as exc:
        raise ConfigError(f"{where / RUN_CONFIG}: '{key}:' is not valid: {exc}") from exc


def inspect_source(path: str | Path, base: str | None = None) -> Source:
    from lmforge.model.adapters import adapter_kind

    p = Path(path)
    if not p.is_dir():
        raise ModelError(f"{p}: not a directory", "give a run directory (lmforge train output), "
                         "a peft adapter directory or a model directory")
    tree, run_dir = _run_tree(p)
    run_model = _section(ModelConfig, tree, "model", run_dir)
    run_adapter = _section(AdapterConfig, tree, "adapter", run_dir)
    stage = tree.get("stage") if tree else None
    if (p / "adapter_config.json").is_file():
        acfg = json.loads((p / "adapter_config.json").read_text(encoding="utf-8"))
        model = run_model
        if model is not None:  # a run moved with the base beside it (model/portable.py)
            from lmforge.model.portable import moved_run_model

            model = moved_run_model(model, p)
        if base is not None:
            model = (model or ModelConfig(path=base)).model_copy(update={"path": base,
                                                                         "gguf_file": None})
        if model is None:
            named = acfg.get("base_model_name_or_path")
            if not named:
                raise ModelError(f"{p}: the adapter does not name its base model",
                                 "pass --base MODEL_PATH")
            from lmforge.model.portable import resolve_base

            model = ModelConfig(path=resolve_base(named, p))  # relative: to the run
        method = adapter_kind(acfg)
        if run_adapter is not None and run_adapter.type == "qlora":
            method = "qlora"
        return Source(p, "adapter", model, method, acfg, run_adapter, run_dir, stage)
    if (p / "config.json").is_file():
        model = ModelConfig(path=str(p), allow_pickle=bool(run_model and run_model.allow_pickle))
        method = run_adapter.type if run_adapter is not None else "model"
        return Source(p, "model", model, method, {}, run_adapter, run_dir, stage)
    raise ModelError(f"{p}: neither a peft adapter (adapter_config.json) nor a model "
                     "(config.json)", "point at the run's output directory or a checkpoint in it")
