"""The checks ``lmforge validate`` runs after the schema, each returning problem lines (never
raising), so that one run reports everything ``train`` would stop on during set-up:

files and templates and built-ins (``files``), the first rows of every source read in the format
the stage needs (``rows``), the model's local availability (``model_source``), trackers and the
optional packages the config uses (``packages``), the transformers/trl arguments object and the
output directory (``arguments``), and adapter module names against the model's own, read from
its config.json on the meta device (``modules``, no weights).
"""

from __future__ import annotations

import difflib
import importlib.util
from itertools import islice
from pathlib import Path

from lmforge.errors import ConfigError, LmforgeError

ROWS = 5  # first rows of each source converted by validate
TRACKERS = {"tensorboard": ("tensorboard", "tracking"), "wandb": ("wandb", "tracking"),
            "mlflow": ("mlflow", "tracking"), "none": None}


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def lines_of(exc: LmforgeError) -> list[str]:
    if isinstance(exc, ConfigError):
        return exc.problems
    return [exc.message + (f" ({exc.hint})" if exc.hint else "")]


def _close(name: str, names) -> str:
    found = difflib.get_close_matches(name, list(names), n=1)
    return f"; did you mean '{found[0]}'?" if found else ""


def files(cfg, model_ok: bool) -> list[str]:
    from lmforge.data.hub import source_exists
    from lmforge.data.templates import builtin_names

    problems = []
    for key in ("train", "eval"):
        spec = getattr(cfg.data, key)
        if spec is None or isinstance(spec, float) or cfg.data.registry:
            continue
        for item in spec if isinstance(spec, list) else [spec]:
            path = item if isinstance(item, str) else item.path
            if not source_exists(path):  # a local path, or a cached Hub dataset id
                problems.append(f"data.{key}: file '{path}' not found")
    template = cfg.model.template
    if template != "auto" and template not in builtin_names() and not template.endswith(".jinja"):
        problems.append(f"model.template: unknown template '{template}'"
                        + _close(template, builtin_names()))
    elif template.endswith(".jinja") and not Path(template).is_file():
        problems.append(f"model.template: file '{template}' not found")
    if model_ok:
        from lmforge.model.chain import problems as chain_problems

        problems += chain_problems(cfg)  # a run directory as model.path (model/chain.py)
    return problems


def model_source(cfg) -> tuple[list[str], Path | None]:
    """Problems with model.path, and its local directory with a config.json (None if none)."""
    from lmforge.utils.builtin import BUILTINS, PREFIX, _missing, builtin_dir, is_cached

    path = cfg.model.path
    if path.startswith(PREFIX):
        name = path[len(PREFIX):]
        if name not in BUILTINS:
            return [f"model.path: unknown built-in model '{path}'" + _close(name, BUILTINS)
                    + " (see lmforge models)"], None
        if is_cached(name):
            return [], builtin_dir(name)
        return ([] if BUILTINS[name].installed() else lines_of(_missing(name))), None
    local = Path(path)
    if local.exists():
        return [], local if (local / "config.json").is_file() else None
    if path.lower().endswith(".gguf") or "/" not in path.strip("/") or path.startswith(
            (".", "/", "~")):
        return [f"model.path: '{path}' is neither a directory nor a hub id"], None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(path, "config.json", revision=cfg.model.revision)
    if not isinstance(found, str):
        return [f"model.path: hub id '{path}' is not in the local cache and lmforge works "
                f"offline: download it first (hf download {path}) or give a local "
                "directory"], None
    return [], Path(found).parent


def rows(cfg) -> list[str]:
    """Every source resolves (registry entries included), and its first rows convert in a
    format the stage reads."""
    from lmforge.data.detect import STAGE_FORMATS, detect
    from lmforge.data.formats import converter
    from lmforge.data.plan import resolve
    from lmforge.data.hub import source_exists
    from lmforge.data.sources import iter_rows
    from lmforge.errors import DataError

    problems: list[str] = []
    allowed = STAGE_FORMATS.get(cfg.stage, ())
    for split in ("train", "eval"):
        try:
            plans = resolve(cfg, split)
        except LmforgeError as exc:
            problems += lines_of(exc)
            continue
        for plan in plans:
            if not source_exists(plan.path):
                if plan.name:  # a plain path is reported by files()
                    problems.append(f"data.{split}: '{plan.name}' names {plan.path}, which is "
                                    "not found")
                continue
            try:
                head = list(islice(iter_rows(plan.path, getattr(cfg.data, "txt_split",
                                                                "blank_line")), ROWS))
                fmt = plan.format
                if fmt == "auto":
                    fmt, head = detect(iter(head), cfg.stage, plan.columns, plan.label)
                    head = list(head)
                if fmt and allowed and fmt not in allowed:
                    problems.append(f"data.format: stage {cfg.stage} reads "
                                    f"{' or '.join(allowed)} data, not '{fmt}' ({plan.label})")
                    continue
                columns = plan.columns
                try:
                    convert = converter(fmt, columns if plan.check_columns else {})
                except ConfigError as exc:  # a bad data.columns: still read the rows without it
                    problems += [p for p in exc.problems if p not in problems]
                    columns, convert = {}, converter(fmt, {})
                for where, row in head:
                    if isinstance(row, DataError):
                        raise row
                    convert(row, columns, where, cfg.data.system)
            except LmforgeError as exc:
                problems += [p for p in lines_of(exc) if p not in problems]
    return problems


def packages(cfg) -> list[str]:
    """train.report_to names, and the installed packages of the optional features in use."""
    problems = []
    for name in cfg.train.report_to:
        if name not in TRACKERS:
            problems.append(f"train.report_to: unknown tracker '{name}'" + _close(name, TRACKERS)
                            + f" (known: {', '.join(TRACKERS)})")
        elif TRACKERS[name] and not installed(TRACKERS[name][0]):
            module, extra = TRACKERS[name]
            problems.append(f"train.report_to: {name} needs the package '{module}', which is "
                            f"not installed: pip install 'lmforge[{extra}]' (or remove it)")
    needs = []
    if cfg.train.deepspeed:
        needs.append(("deepspeed", "deepspeed", "train.deepspeed"))
    if cfg.adapter.type == "qlora":
        needs.append(("bitsandbytes", "qlora", "adapter.type: qlora"))
    if cfg.model.attn_implementation == "flash_attention_2":
        needs.append(("flash_attn", None, "model.attn_implementation: flash_attention_2"))
    for module, extra, feature in needs:
        if not installed(module):
            how = f"pip install 'lmforge[{extra}]'" if extra else f"pip install {module}"
            problems.append(f"{feature} needs the package '{module}', which is not installed: "
                            f"{how}")
    return problems


def arguments(cfg) -> list[str]:
    """The stage's arguments object (TrainingArguments, DPOConfig, ...) with train.extra, and the
    output directory's state."""
    import importlib

    from lmforge.stages import STAGES
    from lmforge.training import output_dir
    from lmforge.training.args import build_arguments

    problems = []
    stage = importlib.import_module(STAGES[cfg.stage]) if cfg.stage in STAGES else None
    build = getattr(stage, "build_args", None) or build_arguments
    try:
        build(cfg, has_eval=cfg.data.eval is not None)
    except LmforgeError as exc:
        problems += lines_of(exc)
    except (ValueError, TypeError, ImportError) as exc:  # transformers' own checks
        problems.append(f"train: the transformers/trl arguments refuse this config: {exc}")
    try:
        output_dir.check(cfg)  # holds a run: train.resume or train.overwrite must say what to do
    except LmforgeError as exc:
        problems += lines_of(exc)
    return problems


def module_names(model_dir: Path, trust_remote_code: bool) -> set[str]:
    """Every module name of the model, built on the meta device from config.json (no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return {name for name, _ in model.named_modules() if name}


def modules(cfg, model_dir: Path | None) -> list[str]:
    a = cfg.adapter
    targets = a.target_modules
    problems = []
    if a.is_peft and isinstance(targets, str) and targets != "all-linear" and "," in targets:
        problems.append(f"adapter.target_modules: '{targets}' is one string (peft reads it as a "
                        f"regular expression); give a list: [{targets.replace(',', ', ')}]")
    if model_dir is None or a.type in ("full",):
        return problems
    try:
        names = module_names(model_dir, cfg.model.trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        return problems + [f"model.path: cannot read the model config in {model_dir}: {exc}"]
    short = {n.rsplit(".", 1)[-1] for n in names}
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names
                     if not any(o.startswith(n + ".") for o in names)})
    checks = [("adapter.modules_to_save", a.modules_to_save)]
    if a.type in ("lora", "qlora", "adalora") and isinstance(targets, list):
        checks.insert(0, ("adapter.target_modules", targets))
    if a.type == "freeze":
        checks.append(("adapter.trainable_modules", a.trainable_modules))
    for key, wanted in checks:
        for name in wanted:
            if name in short or name in names or any(n.endswith("." + name) for n in names):
                continue
            problems.append(f"{key}: the model has no module '{name}'" + _close(name, short)
                            + f" (its layers: {', '.join(leaves[:14])}"
                            + (", ...)" if len(leaves) > 14 else ")"))
    return problems
