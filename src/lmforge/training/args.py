"""The one place where transformers/trl argument objects are built from a RunConfig."""

from __future__ import annotations

from typing import Any

from lmforge.config.run import RunConfig
from lmforge.errors import ConfigError


def common_kwargs(cfg: RunConfig, has_eval: bool) -> dict[str, Any]:
    from lmforge.distributed.engines import engine_kwargs
    from lmforge.tracking import run_name
    from lmforge.training.device import decide

    t = cfg.train
    eval_steps = t.eval_steps or t.save_steps
    report = [r for r in t.report_to if r != "none"] or "none"
    kwargs: dict[str, Any] = dict(
        output_dir=t.output_dir, num_train_epochs=t.epochs, max_steps=t.max_steps,
        learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float < 1 is a fraction in transformers 5
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm,
        optim=t.optimizer, per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch,
        gradient_accumulation_steps=t.grad_accum, seed=t.seed, data_seed=t.seed,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        eval_strategy="steps" if has_eval else "no", eval_steps=eval_steps if has_eval else None,
        logging_steps=t.logging_steps, logging_first_step=True, report_to=report,
        run_name=run_name(cfg),
        dataloader_num_workers=t.dataloader_workers,
        remove_unused_columns=False,
        save_safetensors=True if _accepts("save_safetensors") else None,
        disable_tqdm=False,
        **decide(cfg).training_kwargs(),  # use_cpu, bf16/fp16, Liger (training/device.py)
        **engine_kwargs(cfg),  # train.deepspeed / train.fsdp
    )
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "eval_steps"}
    kwargs["__extra__"] = dict(t.extra)
    return kwargs


def _accepts(name: str) -> bool:
    import dataclasses

    from transformers import TrainingArguments

    return name in {f.name for f in dataclasses.fields(TrainingArguments)}


def build_arguments(cfg: RunConfig, has_eval: bool, cls=None,
                    method_kwargs: dict[str, Any] | None = None):
    """Instantiate the arguments class (TrainingArguments by default, or a trl config class such as
    DPOConfig with the stage's ``method_kwargs``); a bad train.extra key fails here, before any
    model is loaded. ``train.extra`` wins over everything else."""
    import dataclasses

    if cls is None:
        from transformers import TrainingArguments as cls
    kwargs = common_kwargs(cfg, has_eval)
    extra = kwargs.pop("__extra__")
    kwargs.update(method_kwargs or {})
    kwargs.update(extra)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        import difflib

        problems = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"train.extra.{k}: not an argument of {cls.__name__}{hint}")
        raise ConfigError(problems)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"train: {cls.__name__} rejected the settings: {exc}") from None
