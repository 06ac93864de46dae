"""``data:`` — where the examples come from, their format, and how they become tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from lmforge.config.base import Section

DataFormat = Literal["alpaca", "prompt_response", "messages", "text", "python", "preference",
                     "kto", "prompt"]


class SourceSpec(Section):
    path: str = Field(description="a JSON/JSONL/CSV/Parquet file, a saved datasets directory, or a "
                      "dataset name from data.registry")
    weight: float | None = Field(None, gt=0, description="mixing weight relative to other sources")
    samples: int | None = Field(None, ge=1, description="take this many rows (with replacement "
                                "if the source is smaller)")


Sources = str | list[str | SourceSpec]


class DataConfig(Section):
    train: Sources | None = Field(None, description="training data: a path, or a list of paths / "
                                  "{path, weight, samples}")
    eval: Sources | float | None = Field(None, description="evaluation data, or a fraction "
                                         "(0 < f < 1) split off data.train with data.seed")
    format: DataFormat = Field("alpaca", description="row format of the sources")
    columns: dict[str, str] = Field(default_factory=dict, description="rename columns: "
                                    "{canonical_name: name_in_your_file}")
    system: str | None = Field(None, description="default system prompt for rows that have none")
    source: str | None = Field(None, description="format python: 'module:Class' that loads and "
                               "converts your data")
    registry: str | None = Field(None, description="LLaMA-Factory dataset_info.json; data.train "
                                 "then names its entries")
    max_length: int = Field(1024, ge=8, description="maximum tokens per example (or packed block)")
    max_source_length: int | None = Field(None, ge=1, description="maximum prompt tokens")
    max_target_length: int | None = Field(None, ge=1, description="maximum response tokens")
    truncation: Literal["drop", "truncate_prompt", "truncate_response"] = Field(
        "truncate_prompt", description="what to do with over-long examples")
    packing: bool = Field(False, description="pack examples into blocks of max_length; no example "
                          "attends to another")
    train_on: Literal["all_assistant", "last_assistant", "all"] = Field(
        "all_assistant", description="which tokens are trained: every assistant turn, the last, "
        "or everything")
    skip_invalid: bool = Field(False, description="drop invalid rows (the count is reported) "
                               "instead of stopping")
    seed: int = Field(42, description="seed for shuffling, mixing and eval splits")
    cache_dir: str | None = Field(None, description="tokenized-dataset cache (default "
                                  "~/.cache/lmforge/datasets)")
    num_proc: int | None = Field(None, ge=1, description="processes for tokenization")

    @field_validator("eval")
    @classmethod
    def _fraction(cls, v):
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError(f"as a fraction, must be between 0 and 1 (got {v})")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.format == "python" and not self.source:
            raise ValueError("data.format python needs data.source: 'module:Class'")
        return self
