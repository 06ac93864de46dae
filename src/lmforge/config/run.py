"""The whole run: one typed, frozen object built once by the loader and passed to a stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lmforge.config.adapter import AdapterConfig
from lmforge.config.base import Section
from lmforge.config.data import DataConfig
from lmforge.config.eval import EvalConfig
from lmforge.config.methods import (DPOMethod, GRPOMethod, KTOMethod, ORPOMethod, PPOMethod,
                                    PTMethod, RMMethod, SFTMethod)
from lmforge.config.model import ModelConfig
from lmforge.config.stages import STAGE_NAMES
from lmforge.config.train import TrainConfig

# the stage names and the method block keys (one block per stage, named after it) come from the
# stage table; the fields below must match it (tests/unit/test_stage_table.py)
Stage = Literal[STAGE_NAMES]
METHOD_KEYS = STAGE_NAMES


class RunConfig(Section):
    stage: Stage = Field("sft", description="training stage")
    model: ModelConfig = Field(description="base model")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig, description="training method")
    data: DataConfig = Field(default_factory=DataConfig, description="datasets and tokenization")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")
    pt: PTMethod | None = Field(None, description="pretraining settings (stage pt)")
    sft: SFTMethod | None = Field(None, description="SFT settings (stage sft)")
    rm: RMMethod | None = Field(None, description="reward-model settings (stage rm)")
    dpo: DPOMethod | None = Field(None, description="DPO settings (stage dpo)")
    kto: KTOMethod | None = Field(None, description="KTO settings (stage kto)")
    orpo: ORPOMethod | None = Field(None, description="ORPO settings (stage orpo)")
    ppo: PPOMethod | None = Field(None, description="PPO settings (stage ppo)")
    grpo: GRPOMethod | None = Field(None, description="GRPO settings (stage grpo)")

    @model_validator(mode="after")
    def _stage_honours_every_key(self):
        # keys the stage does not honour, AdaLoRA's schedule, the RL prompt room: one error each,
        # all at once (config/crosscheck.py)
        from lmforge.config import crosscheck

        sections = {name: getattr(self, name) for name in ("adapter", "data", "train", "eval")}
        found = crosscheck.problems(self.stage, dict(sections, **{self.stage: self.method()}))
        if found:
            raise crosscheck.as_validation_error(type(self).__name__, found)
        return self

    @model_validator(mode="after")
    def _method_block_matches_stage(self):
        for key in METHOD_KEYS:
            if key != self.stage and getattr(self, key, None) is not None:
                raise ValueError(f"block '{key}:' is given but stage is '{self.stage}'")
        return self

    @model_validator(mode="after")
    def _rl_block_given(self):
        # ppo/grpo have no usable defaults: a reward source must be named
        if self.stage in ("ppo", "grpo") and getattr(self, self.stage) is None:
            raise ValueError(f"stage {self.stage} needs a '{self.stage}:' block with "
                             "reward_functions and/or reward_model")
        return self

    def method(self) -> Section:
        """The method block of this run's stage (defaults when the YAML omits it)."""
        from lmforge.config.methods import METHOD_BLOCKS

        block = getattr(self, self.stage, None)
        return block if block is not None else METHOD_BLOCKS[self.stage]()

    @property
    def prompt_budget(self) -> int | None:
        """Prompt tokens of the stages that generate the completion (ppo, grpo):
        data.max_source_length, else data.max_length minus the method's max_new_tokens (at least
        8, checked by validation); None for the other stages."""
        new = getattr(self.method(), "max_new_tokens", None)
        if new is None:
            return None
        return self.data.max_source_length or self.data.max_length - new
