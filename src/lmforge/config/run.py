"""The whole run: one typed, frozen object built once by the loader and passed to a stage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lmforge.config.adapter import AdapterConfig
from lmforge.config.base import Section
from lmforge.config.data import DataConfig
from lmforge.config.eval import EvalConfig
from lmforge.config.methods import PTMethod, SFTMethod
from lmforge.config.model import ModelConfig
from lmforge.config.train import TrainConfig

Stage = Literal["pt", "sft", "rm", "dpo", "kto", "orpo", "ppo", "grpo"]
METHOD_KEYS = ("pt", "sft", "rm", "dpo", "kto", "orpo", "ppo", "grpo")


class RunConfig(Section):
    stage: Stage = Field("sft", description="training stage")
    model: ModelConfig = Field(description="base model")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig, description="training method")
    data: DataConfig = Field(default_factory=DataConfig, description="datasets and tokenization")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="evaluation")
    pt: PTMethod | None = Field(None, description="pretraining settings (stage pt)")
    sft: SFTMethod | None = Field(None, description="SFT settings (stage sft)")

    @model_validator(mode="after")
    def _method_block_matches_stage(self):
        for key in METHOD_KEYS:
            if key != self.stage and getattr(self, key, None) is not None:
                raise ValueError(f"block '{key}:' is given but stage is '{self.stage}'")
        return self

    def method(self) -> Section:
        """The method block of this run's stage (defaults when the YAML omits it)."""
        from lmforge.config.methods import METHOD_BLOCKS

        block = getattr(self, self.stage, None)
        return block if block is not None else METHOD_BLOCKS[self.stage]()
