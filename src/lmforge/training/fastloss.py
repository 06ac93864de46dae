"""The fast loss: the LM head only on trained positions, with the same numbers.

A causal LM's forward projects EVERY position onto the vocabulary (``lm_head``,
e.g. 49k x 576 for SmolLM2-135M) and the loss then ignores the positions whose next label is -100
(prompts, padding, the first token of each packed example). In the quickstart's classification
setting only ~3 % of the positions are trained, so most of that matmul, its fp32 upcast and its
backward are wasted. transformers 5 lets the forward keep only some positions
(``logits_to_keep``: a 2-D boolean mask keeps exactly the True ones, flattened), so
``FastLossMixin.compute_loss`` keeps the positions p with ``labels[:, p+1] != -100`` and computes
the loss itself with EXACTLY the Trainer's normalisation: the sum over trained tokens divided by
``num_items_in_batch`` (the trained-token count of the whole accumulated batch) when the Trainer
passes it, else the mean (what the model's own loss does). Gradient accumulation therefore stays
correct.

The fast path applies only where it is proven equal to the model's own loss (``loss_extra``): a
model whose loss is more than the cross-entropy either gets the extra term added exactly
(AdaLoRA's orthogonal regulariser, which peft's forward adds) or falls back to the normal path.
Falling back: evaluation (outputs are wanted), label smoothing or a custom loss function, trl
trainers that define their own compute_loss, prompt-learning adapters (virtual tokens shift
positions), peft tuners whose forward is not a plain pass-through, models whose forward has no
``logits_to_keep``, whose loss function is not ``ForCausalLMLoss``, that add a router auxiliary
loss (mixture of experts with ``output_router_logits``), or that return something else than one
row per kept position, and Liger kernels (their fused linear cross-entropy never materialises the
logits anyway). tests/invariants/test_fast_loss.py and test_fast_loss_adapters.py check loss and
gradients against the model's own loss. Device facts (threads, kernels) live in device.py.
"""

from __future__ import annotations

import functools
import inspect
import logging

from lmforge.config.constants import IGNORE_INDEX as IGNORE

log = logging.getLogger(__name__)


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


def _unwrapped(model):
    """The model under DDP / DeepSpeed engine wrappers (a PeftModel stays a PeftModel)."""
    return getattr(model, "module", model)


def _base_model(model):
    """The transformers model under peft / DDP wrappers."""
    inner = _unwrapped(model)
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    return inner


@functools.cache
def _forward_takes_logits_to_keep(cls) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return False


def loss_extra(model):
    """What the model's own training loss adds to the causal-LM cross-entropy: None (nothing,
    the fast loss is exact), or a function ``model -> tensor`` computing the added term exactly
    (AdaLoRA's orthogonal regulariser). Raises Unsupported when equality is not proven: a
    prompt-learning adapter, a peft tuner whose forward is not a plain pass-through, a forward
    without ``logits_to_keep``, a loss function other than transformers' ForCausalLMLoss, a
    mixture-of-experts model that adds its router auxiliary loss."""
    extra = _adapter_extra(_unwrapped(model))
    base = _base_model(model)
    if not _forward_takes_logits_to_keep(type(base)):
        raise Unsupported(f"{type(base).__name__} has no logits_to_keep")
    from transformers.loss.loss_utils import ForCausalLMLoss

    if getattr(base, "loss_function", None) is not ForCausalLMLoss:
        raise Unsupported(f"{type(base).__name__}'s loss is not the causal-LM cross-entropy")
    if getattr(getattr(base, "config", None), "output_router_logits", False):
        raise Unsupported(f"{type(base).__name__} adds its router auxiliary loss")
    return extra


def _adapter_extra(inner):
    """The loss term a peft model's forward adds (see ``loss_extra``)."""
    try:
        from peft import PeftModel
        from peft.tuners.adalora import AdaLoraModel
        from peft.tuners.tuners_utils import BaseTuner
    except ImportError:  # no peft, no adapters
        return None
    if not isinstance(inner, PeftModel):
        return None
    if getattr(inner.active_peft_config, "is_prompt_learning", False):
        raise Unsupported("a prompt-learning adapter shifts the positions")
    forward = type(inner.base_model).forward
    if forward is BaseTuner.forward:  # LoRA, DoRA, QLoRA, ...: the base model's loss unchanged
        return None
    if forward is AdaLoraModel.forward:
        if any(p.ndim == 1 and p.numel() == 0  # 1-D empty: a ZeRO-3 shard (not a pruned rank)
               for n, p in inner.named_parameters() if "lora_" in n):
            raise Unsupported("AdaLoRA's regulariser needs the ZeRO-3 shards gathered")
        return adalora_regulariser
    raise Unsupported(f"the {type(inner.base_model).__name__} adapter changes the loss")


def adalora_regulariser(model):
    """The term AdaLoRA's forward adds to the loss (peft ``AdaLoraModel.forward``): the
    orthogonality penalty ``orth_reg_weight * mean ||P P^T - I||_F`` over the trainable adapter's
    lora_A (P P^T) and lora_B (P^T P) matrices, computed the same way in the same order."""
    import torch

    tuner = _unwrapped(model).base_model
    name = tuner.trainable_adapter_name
    weight = tuner.peft_config[name].orth_reg_weight
    total, count = 0, 0
    for n, p in tuner.model.named_parameters():
        if ("lora_A" in n or "lora_B" in n) and name in n:
            if p.shape == torch.Size([0]):  # a ZeRO-3 shard: peft gathers it, we do not
                raise Unsupported("AdaLoRA's regulariser needs the ZeRO-3 shards gathered")
            cov = p @ p.T if "lora_A" in n else p.T @ p
            eye = torch.eye(*cov.size(), out=torch.empty_like(cov))
            eye.requires_grad = False
            total = total + torch.norm(cov - eye, p="fro")
            count += 1
    return weight * (total / count) if count else 0


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
    _fast_loss_extra = None  # what the model's own loss adds (loss_extra)

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
        if self._fast_loss_state is None:
            try:
                self._fast_loss_extra = loss_extra(model)
            except Unsupported as exc:
                self._fast_loss_state = False
                log.info("fast loss off: %s", exc)
                return False
        return True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self._fast_loss_applies(model, inputs, return_outputs):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        n = num_items_in_batch if self.model_accepts_loss_kwargs else None
        try:
            loss = causal_lm_loss(model, inputs, n)
            if self._fast_loss_extra is not None:  # what the model's own loss adds, exactly
                loss = loss + self._fast_loss_extra(model)
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
