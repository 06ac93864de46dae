"""Training speed-ups that keep the numbers: the LM head only on trained positions (fast loss),
CPU thread defaults, and GPU kernels (Liger, flash-attention) when they are installed.

Fast loss. A causal LM's forward projects EVERY position onto the vocabulary (``lm_head``,
e.g. 49k x 576 for SmolLM2-135M) and the loss then ignores the positions whose next label is -100
(prompts, padding, the first token of each packed example). In the quickstart's classification
setting only ~3 % of the positions are trained, so most of that matmul, its fp32 upcast and its
backward are wasted. transformers 5 lets the forward keep only some positions
(``logits_to_keep``: a 2-D boolean mask keeps exactly the True ones, flattened), so
``FastLossMixin.compute_loss`` keeps the positions p with ``labels[:, p+1] != -100`` and computes
the loss itself with EXACTLY the Trainer's normalisation: the sum over trained tokens divided by
``num_items_in_batch`` (the trained-token count of the whole accumulated batch) when the Trainer
passes it, else the mean (what the model's own loss does). Gradient accumulation therefore stays
correct. The mixin falls back to the normal path for anything it cannot prove equal: evaluation
(outputs are wanted), label smoothing or a custom loss function, trl trainers that define their
own compute_loss, prompt-learning adapters (virtual tokens shift positions), models whose forward
has no ``logits_to_keep`` or returns something else than one row per kept position, and Liger
kernels (their fused linear cross-entropy never materialises the logits anyway).
tests/invariants/test_fast_loss.py checks loss and gradients against the reference path.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os

log = logging.getLogger(__name__)

IGNORE = -100


# ---------------------------------------------------------------- the loss itself


class Unsupported(Exception):
    """The model did not return one logits row per kept position."""


def keep_mask(labels):
    """(B, L) bool: position p is kept when it predicts a trained label (labels[:, p+1])."""
    import torch

    keep = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    return keep


def causal_lm_loss(model, inputs: dict, num_items_in_batch=None):
    """The causal LM loss of ``inputs`` (with 2-D ``labels``) computing logits only where a label
    is trained; equal to the model's own loss (``ForCausalLMLoss``) up to float rounding."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    keep = keep_mask(labels)
    targets = labels[:, 1:][keep[:, :-1]]
    rest = {k: v for k, v in inputs.items() if k != "labels"}
    outputs = model(**rest, logits_to_keep=keep)
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    if logits.ndim != 2 or logits.shape[0] != targets.numel():
        raise Unsupported(f"logits of shape {tuple(logits.shape)} for {targets.numel()} kept "
                          "positions")
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = F.cross_entropy(logits.float(), targets.to(logits.device), reduction=reduction)
    if num_items_in_batch is not None:
        if hasattr(num_items_in_batch, "to"):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        loss = loss / num_items_in_batch
    return loss


def _base_model(model):
    """The transformers model under peft / DDP wrappers."""
    inner = getattr(model, "module", model)  # DDP
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner


@functools.cache
def _forward_takes_logits_to_keep(cls) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


def model_supports(model) -> bool:
    """The model's forward takes ``logits_to_keep`` and no prompt-learning adapter is active."""
    peft_config = getattr(getattr(model, "module", model), "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        return False
    return _forward_takes_logits_to_keep(type(_base_model(model)))


# ---------------------------------------------------------------- the Trainer mixin


def _next_compute_loss_owner(cls):
    """The class whose compute_loss ``FastLossMixin`` would call through ``super()``."""
    mro = cls.__mro__
    after = mro[mro.index(FastLossMixin) + 1:]
    return next((c for c in after if "compute_loss" in c.__dict__), None)


class FastLossMixin:
    """Trainer mixin: the fast loss in training steps when ``fast_loss`` is set and exact."""

    fast_loss: bool = False
    _fast_loss_state: bool | None = None  # None: not tried yet; False: fell back for good

    def _fast_loss_applies(self, model, inputs, return_outputs: bool) -> bool:
        if not self.fast_loss or self._fast_loss_state is False or return_outputs:
            return False
        if not model.training or self.label_smoother is not None \
                or self.compute_loss_func is not None:
            return False
        labels = inputs.get("labels") if hasattr(inputs, "get") else None
        if labels is None or getattr(labels, "ndim", 0) != 2 or "shift_labels" in inputs:
            return False
        from transformers import Trainer

        if _next_compute_loss_owner(type(self)) is not Trainer:  # e.g. trl's own losses
            self._fast_loss_state = False
            return False
        if not model_supports(model):
            self._fast_loss_state = False
            log.info("fast loss off: %s has no logits_to_keep", type(_base_model(model)).__name__)
            return False
        return True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._fast_loss_applies(model, inputs, return_outputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        n = num_items_in_batch if self.model_accepts_loss_kwargs else None
        try:
            loss = causal_lm_loss(model, inputs, n)
        except Unsupported as exc:
            self._fast_loss_state = False
            log.warning("fast loss off (%s): the normal loss path is used", exc)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        except (TypeError, IndexError) as exc:
            if self._fast_loss_state:  # it worked before: a real error
                raise
            self._fast_loss_state = False
            log.warning("fast loss off (%s): the normal loss path is used", exc)
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self._fast_loss_state = True
        # the same scaling as Trainer.compute_loss for token-averaged multi-process losses
        if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs \
                and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        return loss


def install(trainer, cfg) -> None:
    """Switch the speed-ups on for a Trainer built by training.trainer: ``train.fast_loss`` and
    ``train.group_by_length`` (training/grouping.py)."""
    liger = bool(getattr(trainer.args, "use_liger_kernel", False))
    trainer.fast_loss = bool(getattr(cfg.train, "fast_loss", True)) and not liger
    trainer.group_by_length = bool(getattr(cfg.train, "group_by_length", False))


# ---------------------------------------------------------------- threads and GPU kernels


def physical_cores() -> int:
    """Physical cores this process may use: the CPUs it is pinned to, one per core (hyper-threads
    share a core's FPUs, so more threads only add contention to dense matmuls), capped by a
    cgroup CPU quota (containers; torch's own default ignores it and oversubscribes)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in allowed:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/core_id") as a, open(f"{base}/physical_package_id") as b:
                cores.add((a.read().strip(), b.read().strip()))
        except OSError:
            cores.add((str(cpu), ""))
    quota = _cgroup_quota()
    return max(1, min(len(cores), quota) if quota else len(cores))


def _cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` quota, rounded up (None: no quota)."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


def cpu_threads(requested: int | None) -> int:
    """torch threads for CPU training: the configured number (``train.num_threads``), else
    ``OMP_NUM_THREADS`` when the user set it (jobs sharing a machine), else the physical cores."""
    if requested:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return physical_cores()


def gpu_kernels(cfg) -> dict:
    """TrainingArguments additions for sft/pt on a CUDA GPU: Liger kernels (fused RMSNorm, RoPE,
    SwiGLU and a linear cross-entropy that never materialises the logits) when ``liger-kernel``
    is installed. ``train.extra.use_liger_kernel: false`` turns them off. Not exercised by the CPU
    test suite (no GPU there)."""
    import importlib.util

    import torch

    if cfg.stage not in ("sft", "pt"):  # trl's trainers route Liger to their own losses
        return {}
    if cfg.train.use_cpu or not torch.cuda.is_available() \
            or importlib.util.find_spec("liger_kernel") is None:
        return {}
    return {"use_liger_kernel": True}


def auto_attention(model_cfg) -> str | None:
    """The attention kernel for ``model.attn_implementation: auto``: flash-attention 2 on a CUDA
    GPU when ``flash-attn`` is installed and the weights are half precision (its kernels need
    bf16/fp16), else None (transformers chooses, sdpa). LMFORGE_NO_FLASH_ATTENTION=1 opts out.
    Not exercised by the CPU test suite."""
    import importlib.util

    if os.environ.get("LMFORGE_NO_FLASH_ATTENTION") or model_cfg.dtype == "float32":
        return None
    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("flash_attn") is None:
        return None
    return "flash_attention_2"  # dtype 'auto' is bf16/fp16 on a GPU (model/loader.py)
