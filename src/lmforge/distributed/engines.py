"""``train.deepspeed`` / ``train.fsdp`` -> TrainingArguments keywords.

DeepSpeed: a shipped preset (``configs/zero2.json``, ``zero3.json``, ``zero3_offload.json``) or
the user's JSON file. The "auto" values our config determines (micro batch, accumulation,
clipping, precision, optimizer lr/betas/eps/weight decay, global batch once the world size is
known) are filled here, so the resolved dict is what DeepSpeed runs; transformers fills the
model-dependent rest (bucket sizes from hidden_size, scheduler steps) and checks the explicit values
against the TrainingArguments. ZeRO-3 presets set ``stage3_gather_16bit_weights_on_model_save`` so
``save_model`` writes complete weights (without it the saved model holds empty shards).
``zero3_offload`` keeps the configured torch optimizer (``zero_force_ds_cpu_optimizer: false``):
DeepSpeedCPUAdam needs a compiled op; a user config with an ``optimizer`` section selects it.

FSDP: ``train.fsdp: true`` or a dict of transformers ``fsdp_config`` keys; FSDP2 and full
(gathered) state dicts on save are the defaults.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

from lmforge.config.train import DEEPSPEED_PRESETS
from lmforge.errors import ConfigError

AUTO = "auto"


def load_deepspeed(spec: str) -> dict:
    """The preset named ``spec`` or the JSON file at ``spec``."""
    if spec in DEEPSPEED_PRESETS:
        text = resources.files("lmforge.distributed").joinpath("configs", f"{spec}.json")
        return json.loads(text.read_text(encoding="utf-8"))
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"train.deepspeed: '{spec}' is neither a preset "
                          f"({', '.join(DEEPSPEED_PRESETS)}) nor an existing JSON file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"train.deepspeed: {path}:{exc.lineno}: not valid JSON ({exc.msg})")
    if not isinstance(data, dict):
        raise ConfigError(f"train.deepspeed: {path} must hold a JSON object")
    return data


def _fill(config: dict, dotted: str, value) -> None:
    """Replace an "auto" at ``dotted`` (only when present and "auto")."""
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    if node.get(last) == AUTO:
        node[last] = value


def fill_auto(config: dict, cfg, world_size: int | None = None) -> dict:
    """A copy of ``config`` with the "auto" values that ``cfg`` determines filled in."""
    from lmforge.training.device import decide

    t, out = cfg.train, copy.deepcopy(config)
    extra = t.extra
    precision = decide(cfg).precision
    values = {
        "train_micro_batch_size_per_gpu": t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "gradient_clipping": t.max_grad_norm,
        "bf16.enabled": precision == "bf16", "fp16.enabled": precision == "fp16",
        "optimizer.params.lr": t.learning_rate,
        "optimizer.params.weight_decay": t.weight_decay,
        "optimizer.params.betas": [extra.get("adam_beta1", 0.9), extra.get("adam_beta2", 0.999)],
        "optimizer.params.eps": extra.get("adam_epsilon", 1e-8),
        "scheduler.params.warmup_max_lr": t.learning_rate,
    }
    if world_size:
        values["train_batch_size"] = world_size * t.batch_size * t.grad_accum
    for dotted, value in values.items():
        _fill(out, dotted, value)
    return out


def gather_on_save(config: dict) -> dict:
    """ZeRO-3 without ``stage3_gather_16bit_weights_on_model_save`` saves no usable weights
    (only sharded optimizer-state checkpoints): switched on unless the config says false."""
    zero = config.get("zero_optimization")
    if isinstance(zero, dict) and zero.get("stage") == 3:
        key = "stage3_gather_16bit_weights_on_model_save"
        if key not in zero:
            zero[key] = True
        elif not zero[key]:
            import logging

            logging.getLogger(__name__).warning(
                "train.deepspeed: %s is false: the final model is saved as ZeRO shards only "
                "(rebuild it with zero_to_fp32.py in the checkpoint)", key)
    return config


def deepspeed_config(cfg) -> dict:
    from lmforge.distributed import ranks
    from lmforge.errors import require

    require("deepspeed", "deepspeed", "train.deepspeed")
    quiet_cpu_ops(cfg)
    world = ranks.world_size() if ranks.launched() else None
    return gather_on_save(fill_auto(load_deepspeed(cfg.train.deepspeed), cfg, world))


def quiet_cpu_ops(cfg) -> None:
    """On the CPU, DeepSpeed JIT-compiles a shared-memory all-reduce op on first use (minutes on a
    small machine, before step 1); gloo does the same collectives, so the op is marked
    unavailable. DeepSpeed keeps that table in one module-level dict meant to be edited."""
    from lmforge.training.device import on_gpu

    if on_gpu(cfg):
        return
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def forget_previous_run() -> None:
    """Drop the DeepSpeed config a previous run in this process left registered (transformers
    keeps a weak reference that outlives the run while anything holds its arguments): with it,
    the next run's model would load under ZeRO-3 ``zero.Init`` even without DeepSpeed."""
    import sys

    module = sys.modules.get("transformers.integrations.deepspeed")
    if module is not None:
        module.unset_hf_deepspeed_config()


def fsdp_config(cfg) -> dict:
    from lmforge.training.device import on_gpu

    if not on_gpu(cfg):
        # accelerate enables FSDP only on accelerators: on the CPU it would silently train DDP
        raise ConfigError("train.fsdp: FSDP needs CUDA GPUs (on the CPU accelerate ignores it "
                          "and every process would hold the whole model)",
                          hint="use train.deepspeed: zero3 to shard on the CPU")
    spec = cfg.train.fsdp
    options = {} if spec is True else dict(spec)
    options = {k[5:] if k.startswith("fsdp_") else k: v for k, v in options.items()}
    options.setdefault("version", 2)
    options.setdefault("state_dict_type", "FULL_STATE_DICT")  # complete weights on save
    return options


def engine_kwargs(cfg) -> dict[str, Any]:
    """The TrainingArguments keywords for the configured engine (none: plain DDP / 1 process)."""
    if cfg.train.deepspeed:
        return {"deepspeed": deepspeed_config(cfg)}
    if cfg.train.fsdp not in (None, False):
        return {"fsdp": True, "fsdp_config": fsdp_config(cfg)}
    return {}
