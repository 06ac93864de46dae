"""``data:`` — where the examples come from, their format, and how they become tokens."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lmforge.config.base import Section

DataFormat = Literal["auto", "alpaca", "prompt_response", "prompt_completion", "messages", "text",
                     "python", "preference", "kto", "prompt"]


class SourceSpec(Section):
    path: str = Field(description="a JSON/JSONL/CSV/Parquet file, a directory of such files, a "
                      "saved datasets directory, or a dataset name from data.registry")
    weight: float | None = Field(None, gt=0, description="mixing weight relative to the other "
                                 "weighted sources (they share the total of their row counts)")
    samples: int | None = Field(None, ge=1, description="take exactly this many rows (repeating "
                                "the source if it is smaller)")
    format: DataFormat | None = Field(None, description="row format of this source (default: "
                                      "data.format)")
    columns: dict[str, str] | None = Field(None, description="column mapping of this source "
                                           "(default: data.columns)")

    @model_validator(mode="after")
    def _one_of(self):
        if self.weight is not None and self.samples is not None:
            raise ValueError("give weight or samples, not both")
        return self


Sources = str | list[str | SourceSpec]


class DataConfig(Section):
    train: Sources | None = Field(None, description="training data: a path, or a list of paths / "
                                  "{path, weight, samples}; with data.registry, dataset names")
    eval: Sources | float | None = Field(None, description="evaluation data, or a fraction "
                                         "(0 < f < 1) split off data.train with data.seed")
    format: DataFormat = Field("auto", description="row format of the sources; auto: told from "
                               "the columns of each source's first rows and the stage (the "
                               "pre-flight log says which; ambiguous columns are an error)")
    columns: dict[str, str] = Field(default_factory=dict, description="rename columns: "
                                    "{canonical_name: name_in_your_file}; for messages also "
                                    "role_tag, content_tag, user_tag, assistant_tag, system_tag")
    txt_split: Literal["blank_line", "line", "file"] = Field(
        "blank_line", description=".txt sources (stage pt): one document per block of lines "
        "separated by blank lines (blank_line), per non-empty line (line), or per file (file)")
    system: str | None = Field(None, description="default system prompt for rows that have none")
    template_system: Literal["keep", "drop"] = Field(
        "keep", description="the system turn a chat template adds to conversations without one "
        "(SmolLM2's 'You are a helpful AI assistant named SmolLM...', Qwen's, Alpaca's "
        "preamble): keep it, or drop it (fewer tokens per example); the run's saved template, "
        "used by eval, chat, serve and exports, renders the same")
    source: str | None = Field(None, description="format python: 'module:Class' that loads and "
                               "converts your data (importable from the working directory)")
    source_args: dict[str, Any] = Field(default_factory=dict, description="format python: "
                                        "keyword arguments for the class constructor")
    registry: str | None = Field(None, description="LLaMA-Factory dataset_info.json; data.train "
                                 "and data.eval then name its entries")
    max_length: int = Field(1024, ge=8, description="maximum tokens per example (or packed block)")
    max_source_length: int | None = Field(None, ge=1, description="maximum prompt tokens "
                                          "(history cut first, then the prompt from the left)")
    max_target_length: int | None = Field(None, ge=1, description="maximum tokens of the last "
                                          "response (cut from the right)")
    truncation: Literal["drop", "truncate_prompt", "truncate_response"] = Field(
        "truncate_prompt", description="over-long examples: drop them; truncate_prompt: cut the "
        "prompt from the left, whole earlier turns first (it keeps at least a quarter of "
        "max_length, a longer response is then cut from the right); truncate_response: cut "
        "from the right. The same in rm/dpo/kto/orpo (a pair is fitted as one example, its "
        "prompt loses tokens rather than turns); ppo/grpo prompts: truncate_prompt only")
    packing: bool = Field(False, description="pack examples into blocks of max_length; no example "
                          "attends to another")
    train_on: Literal["all_assistant", "last_assistant", "all"] = Field(
        "all_assistant", description="which tokens are trained: every assistant turn, the last, "
        "or everything")
    train_on_tool_results: bool = Field(False, description="tool calling: also train the "
                                        "tool results (role tool / observation) as rendered; by "
                                        "default they are context and only the assistant's "
                                        "turns, tool calls included, are trained")
    skip_invalid: bool = Field(False, description="drop invalid rows (the count is reported) "
                               "instead of stopping")
    seed: int = Field(42, description="seed for mixing and eval splits")
    cache: bool = Field(True, description="reuse tokenized datasets from an earlier run with the "
                        "same files, format, template, tokenizer and settings")
    cache_dir: str | None = Field(None, description="tokenized-dataset cache (default "
                                  "$LMFORGE_CACHE/datasets, i.e. ~/.cache/lmforge/datasets)")
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
        if self.source and ":" not in self.source:
            raise ValueError(f"data.source must be 'module:Class' (got '{self.source}')")
        if self.format == "python" and self.eval is not None and not isinstance(self.eval, float):
            raise ValueError("with data.format python the class provides the eval split; "
                             "data.eval may only be a fraction")
        return self
