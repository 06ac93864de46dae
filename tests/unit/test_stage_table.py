"""The stage table (config/stages.py) and everything generated from it agree, and every key a stage
does not honour is a validation error with the reason, reported with all other errors."""

from __future__ import annotations

import importlib
import typing

import pytest
from pydantic import BaseModel

from lmforge.config.base import Section
from lmforge.config.stages import STAGE_NAMES, STAGE_TABLE

BASE = {"model": {"path": "builtin:tiny-llama"}}
RL_BLOCK = {"reward_functions": ["exact_match"]}


def _tree(stage: str, **sections) -> dict:
    tree = dict(BASE, stage=stage, **sections)
    if stage in ("ppo", "grpo"):
        tree.setdefault(stage, RL_BLOCK)
    return tree


def test_the_generated_lists_agree_with_the_table():
    from lmforge.config.methods import METHOD_BLOCKS
    from lmforge.config.run import METHOD_KEYS, RunConfig, Stage
    from lmforge.stages import STAGES

    assert STAGE_NAMES == ("pt", "sft", "rm", "dpo", "kto", "orpo", "ppo", "grpo")
    assert typing.get_args(Stage) == STAGE_NAMES == METHOD_KEYS
    assert typing.get_args(RunConfig.model_fields["stage"].annotation) == STAGE_NAMES
    assert list(METHOD_BLOCKS) == list(STAGES) == list(STAGE_NAMES)
    for name, spec in STAGE_TABLE.items():
        block = METHOD_BLOCKS[name]
        assert block.__name__ == spec.method and issubclass(block, Section)
        # RunConfig has one optional block named after the stage, of the stage's class
        assert set(typing.get_args(RunConfig.model_fields[name].annotation)) == {block,
                                                                                 type(None)}
        assert STAGES[name] == spec.recipe == f"lmforge.stages.{name}"


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_every_stage_has_a_recipe_that_runs(stage):
    module = importlib.import_module(STAGE_TABLE[stage].recipe)
    assert callable(getattr(module, "run", None)), f"{module.__name__} defines no run(cfg)"


def test_every_listed_key_exists_and_every_refused_value_is_valid():
    from lmforge.config.run import RunConfig

    for spec in STAGE_TABLE.values():
        seen = set()
        for rule in spec.unhonoured:
            section, field = rule.key.split(".")
            cls = next(a for a in (RunConfig.model_fields[section].annotation,)
                       if isinstance(a, type) and issubclass(a, BaseModel))
            assert field in cls.model_fields, f"{spec.name}: {rule.key} is not a config key"
            assert rule.reason.strip(), rule.key
            for value in rule.values:  # a refused value is one the schema accepts
                cls.model_validate({field: value})
            assert (rule.key, rule.values) not in seen, f"{spec.name}: {rule.key} listed twice"
            seen.add((rule.key, rule.values))
    assert STAGE_TABLE["sft"].unhonoured == ()  # everything applies to SFT


def test_a_stage_block_for_another_stage_is_still_refused():
    from lmforge.config import validate
    from lmforge.errors import ConfigError

    with pytest.raises(ConfigError, match="block 'dpo:' is given but stage is 'sft'"):
        validate(dict(BASE, stage="sft", dpo={"beta": 0.2}))


def _set_value(rule):
    """A non-default value for the rule's key (the refused value when the rule names some)."""
    from lmforge.config.run import RunConfig

    section, field = rule.key.split(".")
    if rule.values:
        return rule.values[0]
    cls = typing.get_args(RunConfig.model_fields[section].annotation) or \
        (RunConfig.model_fields[section].annotation,)
    cls = next(c for c in cls if isinstance(c, type) and issubclass(c, BaseModel))
    default = cls.model_fields[field].get_default(call_default_factory=True)
    samples = {bool: not default, int: 3, type(None): 3}
    if field == "best_metric":
        return "accuracy"
    if field == "metrics":
        return ["accuracy"]
    if field == "generation":
        return {"temperature": 0.5}
    if field == "answer_pattern":
        return "(\\d+)"
    if field == "train_on":
        return "last_assistant"
    if field == "truncation":
        return "drop"
    if field == "grad_accum":
        return 2
    if field == "greater_is_better":
        return True
    if field == "pad_to_multiple_of":
        return 8
    return samples[type(default)]


CASES = [(s.name, rule) for s in STAGE_TABLE.values() for rule in s.unhonoured]


@pytest.mark.parametrize("stage,rule", CASES, ids=[f"{s}:{r.key}:{','.join(r.values)}"
                                                    for s, r in CASES])
def test_a_key_the_stage_does_not_honour_is_an_error_with_the_reason(stage, rule):
    from lmforge.config import validate
    from lmforge.errors import ConfigError

    section, field = rule.key.split(".")
    value = _set_value(rule)
    with pytest.raises(ConfigError) as err:
        validate(_tree(stage, **{section: {field: value}}))
    line = next(p for p in err.value.problems if p.startswith(rule.key + ":"))
    assert f"not used by stage {stage}" in line and rule.reason in line
    # the same value is fine for sft (it honours everything) ...
    if stage != "pt":
        validate(_tree("sft", **{section: {field: value}}))
    # ... and the default, written out, is not "set"
    from lmforge.config.run import RunConfig

    cls = RunConfig.model_fields[section].annotation
    default = cls.model_fields[field].get_default(call_default_factory=True)
    dumped = default.model_dump() if isinstance(default, BaseModel) else default
    validate(_tree(stage, **{section: {field: dumped}}))


def test_the_issue_reproduction_reports_all_four_keys(cli):
    """`lmforge validate examples/tiny/dpo.yaml data.packing=true ...` printed `ok`."""
    proc = cli("validate", "examples/tiny/dpo.yaml", "data.packing=true",
               "train.group_by_length=true", "eval.during_training=true",
               "eval.best_metric=accuracy")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "4 problems" in out
    for key in ("data.packing", "train.group_by_length", "eval.during_training",
                "eval.best_metric"):
        assert f"{key}: not used by stage dpo" in out, out


def test_stage_errors_come_with_the_other_errors():
    """A section with its own error does not hide the stage errors of the others."""
    from lmforge.config import validate
    from lmforge.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        validate(_tree("dpo", data={"packing": True}, train={"learing_rate": 1.0},
                       eval={"best_metric": "accuracy"}))
    problems = err.value.problems
    assert any(p.startswith("train.learing_rate: unknown key") for p in problems)
    assert any(p.startswith("data.packing: not used by stage dpo") for p in problems)
    assert any(p.startswith("eval.best_metric: not used by stage dpo") for p in problems)
    assert len(problems) == 3


def test_truncation_modes_per_stage():
    """One meaning of data.truncation: the RL stages refuse the modes they cannot apply to a
    prompt; every other stage accepts all three."""
    from lmforge.config import validate
    from lmforge.errors import ConfigError

    for stage in ("sft", "rm", "dpo", "kto", "orpo", "ppo", "grpo"):
        for mode in ("drop", "truncate_prompt", "truncate_response"):
            tree = _tree(stage, data={"truncation": mode})
            if stage in ("ppo", "grpo") and mode != "truncate_prompt":
                with pytest.raises(ConfigError, match=f"data.truncation: not used by stage "
                                                      f"{stage}"):
                    validate(tree)
            else:
                validate(tree)


@pytest.mark.parametrize("stage", ["ppo", "grpo"])
def test_prompt_budget_is_one_property(stage):
    from lmforge.config import validate
    from lmforge.errors import ConfigError

    cfg = validate(_tree(stage, data={"max_length": 100}, **{stage: dict(RL_BLOCK,
                                                                          max_new_tokens=30)}))
    assert cfg.prompt_budget == 70
    cfg = validate(_tree(stage, data={"max_length": 100, "max_source_length": 12}))
    assert cfg.prompt_budget == 12
    with pytest.raises(ConfigError, match="data.max_length: leaves 4 prompt tokens"):
        validate(_tree(stage, data={"max_length": 68}))  # max_new_tokens 64 by default
    assert validate(_tree("sft")).prompt_budget is None
