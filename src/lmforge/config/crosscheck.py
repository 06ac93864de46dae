"""Checks across sections, run as part of validation so that they are reported with every other
config error at once:

- every key the selected stage does not honour (the stage table, config/stages.py), when the
  user set it to a value other than its default, is an error with the reason;
- AdaLoRA's rank schedule (tinit, tfinal, total_step) against the run length, when it is known
  from the config (``adapter.total_step`` or ``train.max_steps``; otherwise
  ``model.schedule.AdaLoraSchedule`` checks it at train start with the same function);
- ppo/grpo: train.batch_size counts completions, so it must hold whole groups of
  ``<stage>.num_generations`` (grpo: batch_size x grad_accum, trl's generation batch);
- ppo/grpo: data.max_length must leave room for a prompt next to the generated tokens;
  raw-text prompts (``<stage>.prompt_template: raw``) are not rendered with the chat template, so
  a default system prompt (``data.system``) has nowhere to go.

A problem is (location, message, value; None: no value to show); ``as_validation_error`` turns problems into pydantic's
ValidationError so that config/report.py formats them like the others.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from lmforge.config.stages import STAGE_TABLE

Problem = tuple[tuple[str, ...], str, Any]
ERROR_TYPE = "stage_key"  # a key the stage does not honour ("got" shows the value)
CHECK_TYPE = "cross_section"  # a problem between sections (the message says it all)
TYPES = (ERROR_TYPE, CHECK_TYPE)
MIN_PROMPT = 8  # tokens a ppo/grpo prompt gets at least


def is_set(section: BaseModel, field: str) -> bool:
    """The user gave ``field`` a value other than its default."""
    if field not in section.model_fields_set:
        return False
    default = type(section).model_fields[field].get_default(call_default_factory=True)
    return getattr(section, field) != default


def unhonoured(stage: str, sections: dict[str, BaseModel | None]) -> list[Problem]:
    """The keys set in ``sections`` that ``stage`` does not honour, with the reason."""
    spec = STAGE_TABLE.get(stage)
    out: list[Problem] = []
    for rule in spec.unhonoured if spec else ():
        name, field = rule.key.split(".")
        section = sections.get(name)
        if section is None or not is_set(section, field):
            continue
        value = getattr(section, field)
        if rule.values and value not in rule.values:
            continue
        shown = value.model_dump() if isinstance(value, BaseModel) else value
        out.append(((name, field), f"not used by stage {stage}: {rule.reason}", shown))
    return out


def adalora_steps_needed(adapter) -> int:
    """The fewest optimizer steps AdaLoRA's schedule runs on: peft needs tinit < total - tfinal
    (a budgeting phase) and at least one step that scores importance before the final allocation
    at step total - tfinal (else its allocator has no scores: KeyError)."""
    return adapter.tfinal + max(adapter.tinit + 1, 2)


def adalora_problems(adapter, total: int, steps_key: str, source: str | None = None
                     ) -> list[Problem]:
    """AdaLoRA's schedule against ``total`` optimizer steps; ``steps_key`` is the key that sets
    the run length, ``source`` says where ``total`` came from (default: ``steps_key``)."""
    if adapter.type != "adalora":
        return []
    need = adalora_steps_needed(adapter)
    if total >= need:
        return []
    fix = f"set {steps_key} to at least {need}"
    if total >= 2:
        fix += (f", or shorten the schedule to tfinal + max(tinit + 1, 2) <= {total} (e.g. "
                f"adapter.tinit: 0, adapter.tfinal: {total - 2})")
    return [(("adapter", "tfinal" if adapter.tfinal else "tinit"),
             f"AdaLoRA's rank schedule (tinit={adapter.tinit}, tfinal={adapter.tfinal}) needs at "
             f"least {need} optimizer steps, {source or steps_key} gives {total}: {fix}", None)]


def _adalora(adapter, train) -> list[Problem]:
    if adapter is None or adapter.type != "adalora":
        return []
    if adapter.total_step:
        return adalora_problems(adapter, adapter.total_step, "adapter.total_step")
    if train is not None and train.max_steps > 0:
        return adalora_problems(adapter, train.max_steps, "train.max_steps")
    return []  # known at train start: model/schedule.py


def _prompt_room(stage: str, data, method) -> list[Problem]:
    new = getattr(method, "max_new_tokens", None)
    if data is None or new is None or data.max_source_length or \
            data.max_length - new >= MIN_PROMPT:
        return []
    return [(("data", "max_length"),
             f"leaves {data.max_length - new} prompt tokens next to the {new} generated ones "
             f"({stage}.max_new_tokens); raise data.max_length to at least {new + MIN_PROMPT}, "
             f"lower {stage}.max_new_tokens, or set data.max_source_length", None)]


def _whole_groups(stage: str, train, method) -> list[Problem]:
    k = getattr(method, "num_generations", None)
    if train is None or k is None or stage not in ("ppo", "grpo"):
        return []
    per_step = train.batch_size * (train.grad_accum if stage == "grpo" else 1)
    if per_step % k == 0:
        return []
    what = "batch_size x grad_accum" if stage == "grpo" else "batch_size"
    return [(("train", "batch_size"), f"{what} ({per_step}) counts completions and must be a "
             f"multiple of {stage}.num_generations ({k})", None)]


def _raw_prompts(stage: str, data, method) -> list[Problem]:
    if getattr(method, "prompt_template", None) != "raw" or data is None or \
            not is_set(data, "system"):
        return []
    return [(("data", "system"), f"not used: {stage}.prompt_template is raw (the model continues "
             "the prompt text; no chat template renders a system prompt); remove data.system or "
             f"set {stage}.prompt_template: chat", data.system)]


def problems(stage: str, sections: dict[str, BaseModel | None]) -> list[Problem]:
    """Every cross-section problem of a config given as its (validated) sections; a section that
    failed validation is passed as None and skipped (its own errors are reported)."""
    out = unhonoured(stage, sections)
    out += _adalora(sections.get("adapter"), sections.get("train"))
    out += _prompt_room(stage, sections.get("data"), sections.get(stage))
    out += _whole_groups(stage, sections.get("train"), sections.get(stage))
    out += _raw_prompts(stage, sections.get("data"), sections.get(stage))
    return out


def as_validation_error(title: str, found: list[Problem]) -> ValidationError:
    return ValidationError.from_exception_data(title, [
        InitErrorDetails(type=PydanticCustomError(CHECK_TYPE if value is None else ERROR_TYPE,
                                                  message), loc=loc, input=value)
        for loc, message, value in found])


def raw_problems(tree: dict, run_cls: type[BaseModel]) -> list[Problem]:
    """``problems`` for a raw config tree that failed validation elsewhere: each section is
    validated alone (with its class from ``run_cls``, the RunConfig: passed in, since run.py
    imports this module), the invalid ones skipped."""
    RunConfig = run_cls  # noqa: N806

    if not isinstance(tree, dict):
        return []
    stage = tree.get("stage", RunConfig.model_fields["stage"].default)
    if not isinstance(stage, str) or stage not in STAGE_TABLE:
        return []
    sections: dict[str, BaseModel | None] = {}
    for name in ("adapter", "data", "train", "eval", stage):
        field = RunConfig.model_fields[name]
        cls = next(a for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
                   if isinstance(a, type) and issubclass(a, BaseModel))
        raw = tree.get(name)
        try:
            sections[name] = cls.model_validate(raw if raw is not None else {})
        except ValidationError:
            sections[name] = None
    return problems(stage, sections)
