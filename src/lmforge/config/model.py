"""``model:`` — which base model to load and how."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from lmforge.config.base import Section


class RopeScaling(Section):
    type: Literal["linear", "dynamic"] = Field(
        description="RoPE scaling kind: 'linear' (position interpolation) or 'dynamic' (NTK-aware)")
    factor: float = Field(gt=1.0, description="context extension factor, e.g. 2.0 doubles it")


class ModelConfig(Section):
    path: str = Field(description="local model directory, hub id (from the local cache), a .gguf "
                      "file, or builtin:<name> (see `lmforge models`)")
    template: str = Field("auto", description="chat template: 'auto' = the tokenizer's own, or a "
                          "built-in name (alpaca, chatml, llama2, llama3, qwen, plain)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="weights dtype; 'auto' = float32 on CPU, bfloat16 on a GPU that has it")
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto", description="attention kernel; 'auto' lets transformers choose (on the CPU in "
        "float32, sft/pt: SDPA row by row, a packed row example by example, "
        "model/row_attention.py; under CPU "
        "bf16 autocast: float32 SDPA where gradients flow, model/float32_attention.py; 'sdpa': "
        "transformers' SDPA as is)")
    trust_remote_code: bool = Field(False, description="allow code shipped with the model to run")
    allow_pickle: bool = Field(False, description="allow loading pickle (.bin/.pt) weights; only "
                               "safetensors are ever written")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")
    rope_scaling: RopeScaling | None = Field(None, description="extend the context with RoPE "
                                             "scaling: {type: linear|dynamic, factor: 2.0}")
    gguf_file: str | None = Field(None, description="GGUF file name inside model.path (or give "
                                  "model.path as the .gguf file); converted once to safetensors")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    new_special_tokens: list[str] = Field(default_factory=list, description="tokens to add; "
                                          "embeddings are resized (and trained fully with peft "
                                          "adapters unless adapter.modules_to_save is set)")
    cache_dir: str | None = Field(None, description="where converted models (GGUF) are cached "
                                  "(default: $LMFORGE_CACHE/converted)")

    @field_validator("path")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _one_gguf(self):
        if self.gguf_file and self.path.lower().endswith(".gguf"):
            raise ValueError("model.path is already a .gguf file; drop model.gguf_file (or set "
                             "model.path to its directory)")
        return self
