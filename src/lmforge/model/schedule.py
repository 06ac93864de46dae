"""AdaLoRA's rank schedule as a Trainer callback.

AdaLoRA re-allocates ranks from gradient-based importance scores: peft's
``AdaLoraModel.update_and_allocate(step)`` must run after every optimizer step, while the gradients
still exist (before ``zero_grad``), and its budget schedule needs the total number of steps, which
only the Trainer knows. transformers' Trainer calls ``on_optimizer_step`` exactly there, and
``state.max_steps`` is set before ``on_train_begin``.
"""

from __future__ import annotations

import logging

from transformers import TrainerCallback

from lmforge.errors import ConfigError

log = logging.getLogger(__name__)


class _Schedule:
    """The schedule keys of peft's AdaLoraConfig under lmforge's names."""

    type = "adalora"

    def __init__(self, tinit: int, tfinal: int):
        self.tinit, self.tfinal = tinit, tfinal


class AdaLoraSchedule(TrainerCallback):
    def __init__(self, tuner, fixed_total: int | None = None):
        self.tuner = tuner  # the AdaLoraModel inside the PeftModel
        self.fixed_total = fixed_total

    def _config(self):
        return self.tuner.peft_config[self.tuner.trainable_adapter_name]

    def on_train_begin(self, args, state, control, **kwargs):
        cfg = self._config()
        total = self.fixed_total or state.max_steps
        # the run length is known only now when the config gives epochs: the same check as
        # validation makes with train.max_steps (config/crosscheck.py), before any step
        from lmforge.config.crosscheck import adalora_problems

        key, source = ("adapter.total_step", None) if self.fixed_total else (
            "train.max_steps (or adapter.total_step)",
            f"train.epochs: {state.num_train_epochs:g} ({total} optimizer steps)")
        found = adalora_problems(_Schedule(cfg.tinit, cfg.tfinal), total, key, source)
        if found:
            raise ConfigError([f"{'.'.join(loc)}: {message}" for loc, message, _ in found])
        self.tuner.rankallocator.set_total_step(total)
        cfg.total_step = total
        log.info("AdaLoRA: ranks %d -> %d over %d steps (tinit %d, tfinal %d, every %d)",
                 cfg.init_r, cfg.target_r, total, cfg.tinit, cfg.tfinal, cfg.deltaT)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.tuner.update_and_allocate(state.global_step)
