"""Find and load what a user points at for inference: a model directory, a run directory (its
saved ``lmforge_config.yaml`` names the base model; the directory holds a LoRA adapter or the full
fine-tuned model), a ``checkpoint-N`` inside a run, a merged export, or ``builtin:<name>``. A run
chained from an earlier one (model/chain.py) names its own ``<run>/base``, found there also after
the run directory was moved.

The chat template is the one the model was trained with: a run's config (``model.template``
resolved against the tokenizer saved in the run, which ``save_final`` wrote with that template),
otherwise the directory's tokenizer template, unless the caller names a built-in template.
Quantized (QLoRA) bases are loaded unquantized in ``model.dtype`` for inference.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.config.constants import RUN_CONFIG_FILE
from lmforge.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

RUN_CONFIG = RUN_CONFIG_FILE


@dataclass
class Loaded:
    model: Any
    tokenizer: Any
    template: str | None  # None: the model has no chat template (raw prompts only)
    name: str
    run_config: Any = None  # the RunConfig the model was trained with, when known


def run_config_of(path: str | Path):
    """The RunConfig saved in ``path`` or, for a checkpoint-N directory, in its parent."""
    from lmforge.config.loader import read_yaml, validate

    p = Path(path)
    for d in (p, p.parent):
        if (d / RUN_CONFIG).is_file():
            return located(validate(read_yaml(d / RUN_CONFIG, "run config")), d)
    return None


def located(run_cfg, run_dir: Path):
    """``run_cfg`` (saved in ``run_dir``) with its model found where the run now lies: a chained
    run's own ``base/``, or a base moved beside the run (the adapter's relative name)."""
    from lmforge.model.portable import moved_run_model

    run_cfg = _chained_base(run_cfg, run_dir)
    model = moved_run_model(run_cfg.model, run_dir)
    return run_cfg if model is run_cfg.model else run_cfg.model_copy(update={"model": model})


def _chained_base(run_cfg, run_dir: Path):
    """A chained run (model/chain.py) keeps its base in ``<run>/base``, and its config names that
    directory by its absolute path: found in the run itself when the run was moved or copied."""
    from lmforge.model.chain import BASE_DIR, MARKER

    local = run_dir / BASE_DIR
    recorded = Path(run_cfg.model.path)
    if not (local / MARKER).is_file() or recorded == local.resolve():
        return run_cfg
    if recorded.name == BASE_DIR and not (recorded / MARKER).is_file():
        log.info("the run's base %s is gone: using %s", recorded, local)
        model = run_cfg.model.model_copy(update={"path": str(local)})
        return run_cfg.model_copy(update={"model": model})
    return run_cfg


def _has_weights(d: Path) -> bool:
    return (d / "config.json").is_file() and (
        any(d.glob("*.safetensors")) or any(d.glob("*.bin")))


def _is_adapter(d: Path) -> bool:
    return (d / "adapter_config.json").is_file()


def _has_tokenizer(d: Path) -> bool:
    return (d / "tokenizer_config.json").is_file() or (d / "tokenizer.json").is_file()


def _tokenizer(mcfg, *dirs: Path):
    from lmforge.model.loader import load_tokenizer

    for d in dirs:
        if d is not None and _has_tokenizer(d):
            return load_tokenizer(mcfg.model_copy(update={"path": str(d),
                                                          "new_special_tokens": []}))
    return load_tokenizer(mcfg)


def _plain_model_cfg(path: str, dtype: str | None, template: str | None = None):
    from lmforge.config.model import ModelConfig

    return ModelConfig(path=path, dtype=dtype or "auto", template=template or "auto")


def _inference_cfg(mcfg, path: str | None = None, dtype: str | None = None):
    update: dict = {"gradient_checkpointing": False}
    if path is not None:  # a saved full model: its config.json already holds any rope scaling
        update.update(path=path, rope_scaling=None, gguf_file=None, new_special_tokens=[],
                      revision=None)
    if dtype:
        update["dtype"] = dtype
    return mcfg.model_copy(update=update)


def _attach_adapter(model, adapter_dir: Path):
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the adapter in {adapter_dir}: {exc}") from exc


def _adapter_base(adapter_dir: Path) -> str:
    data = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base = data.get("base_model_name_or_path")
    if not base:
        raise ModelError(f"{adapter_dir} is an adapter without a recorded base model",
                         "pass the base with --model and the adapter with --adapter")
    from lmforge.model.portable import resolve_base

    return resolve_base(base, adapter_dir)  # builtin:, hub id, or a path relative to the run


def _template(run_cfg, tokenizer, name: str | None) -> str | None:
    from lmforge.data.templates import resolve_template

    if name:
        return resolve_template(name, tokenizer)
    if run_cfg is not None:
        return resolve_template(run_cfg.model.template, tokenizer, run_cfg.data.template_system)
    try:
        return resolve_template("auto", tokenizer)
    except ConfigError:  # a base model without a chat template: raw-text use only
        return None


def load(path: str, adapter: str | None = None, template: str | None = None,
         dtype: str | None = None, device: str | None = None, rope_scaling=None) -> Loaded:
    """Load model + tokenizer + chat template from a model dir, run dir, checkpoint or export;
    ``rope_scaling`` (a config.model.RopeScaling, from --rope-scaling) replaces the model's."""
    from lmforge.model.loader import load_model
    from lmforge.training.device import for_inference
    from lmforge.utils.builtin import resolve

    root = Path(resolve(path))
    if not root.exists():
        raise ModelError(f"model '{path}': no such directory")
    adapter_dir = Path(adapter) if adapter else None
    run_cfg = run_config_of(adapter_dir) if adapter_dir else None
    run_cfg = run_cfg or run_config_of(root)
    if adapter_dir is None and _is_adapter(root):
        adapter_dir = root
    if adapter_dir is not None:
        if not _is_adapter(adapter_dir):
            raise ModelError(f"{adapter_dir} holds no adapter (adapter_config.json missing)")
        if run_cfg is not None:
            base = run_cfg.model if adapter_dir == root else run_cfg.model.model_copy(
                update={"path": str(root)})
            base_cfg = _inference_cfg(base, dtype=dtype)
        elif adapter_dir != root:
            base_cfg = _plain_model_cfg(str(root), dtype)
        else:
            base_cfg = _plain_model_cfg(_adapter_base(adapter_dir), dtype)
        parent = adapter_dir.parent if (adapter_dir.parent / RUN_CONFIG).is_file() else None
        tokenizer = _tokenizer(base_cfg, adapter_dir, parent)
        base_cfg = _with_rope(base_cfg, rope_scaling)
        facts = for_inference(base_cfg, device)  # dtype/attention for where it will run
        model = _attach_adapter(load_model(base_cfg, tokenizer, facts=facts), adapter_dir)
    elif _has_weights(root):
        mcfg = (_inference_cfg(run_cfg.model, str(root), dtype) if run_cfg is not None
                else _plain_model_cfg(str(root), dtype))
        mcfg = _with_rope(mcfg, rope_scaling)
        tokenizer = _tokenizer(mcfg, root, root.parent if run_cfg else None)
        model = load_model(mcfg, tokenizer, facts=for_inference(mcfg, device))
    else:
        raise ModelError(f"{root} holds no model weights or adapter",
                         "point at a run's output_dir after training, a checkpoint-N inside "
                         "it, or a model directory")
    model.eval()
    if device or _default_device() != "cpu":
        model.to(device or _default_device())
    name = str(adapter_dir or root)
    log.info("loaded %s", name)
    return Loaded(model, tokenizer, _template(run_cfg, tokenizer, template), name, run_cfg)


def _with_rope(mcfg, rope_scaling):
    return mcfg if rope_scaling is None else mcfg.model_copy(update={"rope_scaling": rope_scaling})


def _default_device() -> str:
    from lmforge.training.device import inference_device

    return inference_device()
