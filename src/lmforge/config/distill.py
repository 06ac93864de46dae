"""``distill:`` — the config of ``lmforge distill``: a teacher writes responses for input records,
they are verified against gold answers (or a majority vote) and written as an SFT dataset.

A distill file is not a run config (no model to train), so it has its own top-level model and
loader; errors are reported exactly like run-config errors (dotted path, did-you-mean, exit 2).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from lmforge.config.base import Section


class LocalTeacherConfig(Section):
    path: str = Field(description="a model directory, a run's output_dir (or checkpoint-N), a "
                      "merged export, or builtin:<name>")
    adapter: str | None = Field(None, description="a LoRA adapter directory on top of path")
    template: str | None = Field(None, description="chat template (default: the one the model "
                                 "was trained with, else the tokenizer's own)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = Field(
        None, description="weights dtype (default: the model's configured dtype)")
    batch_size: int = Field(8, ge=1, description="prompts generated together (at most "
                            "distill.concurrency requests are waiting at once)")


class TeacherConfig(Section):
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. "
                                 "http://127.0.0.1:8000/v1 (POST {base_url}/chat/completions)")
    model: str | None = Field(None, description="model name sent to the endpoint")
    api_key_env: str | None = Field(None, description="name of the environment variable holding "
                                    "the API key (the key itself is never written anywhere)")
    local: LocalTeacherConfig | None = Field(None, description="a local teacher instead of an "
                                             "endpoint: a path (model, run or builtin:<name>) or "
                                             "{path, adapter, template, dtype, batch_size}")
    reasoning: Literal["think_tags", "drop"] = Field(
        "think_tags", description="a separate reasoning_content in the reply: keep it before the "
        "answer inside <think>...</think>, or drop it")

    @field_validator("local", mode="before")
    @classmethod
    def _path_shorthand(cls, v):
        return {"path": v} if isinstance(v, str) else v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"must be an http(s):// URL (got {v!r})")
        return v.rstrip("/") if v else v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            # guards against pasting the key itself here: it would end up in saved configs
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), "
                             "not the key itself")
        return v

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.base_url is None) == (self.local is None):
            raise ValueError("set either teacher.base_url (an endpoint) or teacher.local (a "
                             "local model), exactly one of them")
        if self.base_url is not None and not self.model:
            raise ValueError("teacher.model is required with teacher.base_url")
        return self


class GenerationOptions(Section):
    max_new_tokens: int = Field(1024, ge=1, description="maximum tokens per teacher response")
    temperature: float = Field(0.7, ge=0, description="sampling temperature (0: greedy)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling")
    stop: list[str] = Field(default_factory=list, description="stop sequences")
    seed: int | None = Field(None, description="base seed; sample i of a record uses seed + i")
    extra: dict[str, Any] = Field(default_factory=dict, description="extra request-body keys "
                                  "for the endpoint (e.g. max_completion_tokens)")


class RetryConfig(Section):
    max_attempts: int = Field(6, ge=1, description="attempts per request (timeouts, 429, 5xx and "
                              "connection errors are retried)")
    backoff: float = Field(1.0, ge=0, description="first retry delay in seconds; doubles each "
                           "attempt, with jitter")
    max_backoff: float = Field(60.0, ge=0, description="cap on one computed delay (a server's "
                               "Retry-After is honoured as given, up to 10 minutes)")


class VerifyConfig(Section):
    answer_pattern: str = Field(description="regex extracting the final answer from a response "
                                "(group 'answer', else group 1, else the match; last match wins)")
    mode: Literal["gold", "majority"] = Field("gold", description="keep samples whose answer "
                                              "equals the record's gold field, or the majority "
                                              "answer over num_samples")
    gold_field: str | None = Field(None, description="record field holding the gold answer "
                                   "(mode gold)")
    min_agreement: float = Field(0.5, gt=0, le=1, description="mode majority: fraction of "
                                 "num_samples that must give the winning answer")
    ignore_case: bool = Field(True, description="compare answers case-insensitively (numbers are "
                              "always compared as numbers: 42 == 42.0)")

    @field_validator("answer_pattern")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        return v

    @model_validator(mode="after")
    def _gold(self):
        if self.mode == "gold" and not self.gold_field:
            raise ValueError("verify.mode gold needs verify.gold_field (or use mode: majority)")
        return self


def _check_template(v: str | None) -> str | None:
    if v is None:
        return v
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    try:
        SandboxedEnvironment().parse(v)
    except TemplateSyntaxError as exc:
        raise ValueError(f"not a valid Jinja template (line {exc.lineno}: {exc.message})") from None
    return v


class DistillConfig(Section):
    teacher: TeacherConfig = Field(description="who writes the responses")
    input: str = Field(description="input records: a JSON/JSONL/CSV/Parquet file or a saved "
                       "datasets directory")
    id_field: str = Field("id", description="record field used as the stable id for resume "
                          "(records without it are keyed by a hash of their content)")
    limit: int | None = Field(None, ge=1, description="use only the first N input records")
    prompt: str = Field(description="Jinja template of the teacher's user message over the "
                        "record's fields (also available as `record`)")
    system: str | None = Field(None, description="Jinja template of the teacher's system prompt")
    student_prompt: str | None = Field(None, description="Jinja template of the prompt stored in "
                                       "the dataset (default: the teacher prompt)")
    student_system: str | None = Field(None, description="system prompt stored in the dataset "
                                       "(default: the teacher's; \"\" for none)")
    output: str = Field(description="output JSONL; rejected samples go to <stem>.rejected.jsonl "
                        "and the report to <stem>.report.json next to it")
    format: Literal["prompt_response", "messages"] = Field(
        "prompt_response", description="row format of the output (read by data.format)")
    num_samples: int = Field(1, ge=1, le=64, description="teacher samples per input record")
    keep: Literal["all", "first"] = Field("all", description="keep every verified sample of a "
                                          "record, or only the first")
    drop_truncated: bool = Field(True, description="reject responses cut off at "
                                 "generation.max_new_tokens (their reasoning is incomplete)")
    generation: GenerationOptions = Field(default_factory=GenerationOptions,
                                          description="sampling options")
    concurrency: int = Field(4, ge=1, le=1024, description="requests in flight at once")
    timeout: float = Field(120.0, gt=0, description="seconds per request (whole request)")
    retries: RetryConfig = Field(default_factory=RetryConfig, description="retry policy")
    verify: VerifyConfig | None = Field(None, description="answer verification (none: keep "
                                        "every complete, non-empty response)")

    @field_validator("prompt", "system", "student_prompt", "student_system")
    @classmethod
    def _templates(cls, v: str | None) -> str | None:
        return _check_template(v)


class DistillFile(Section):
    distill: DistillConfig = Field(description="teacher distillation settings")


def validate_distill(tree: dict[str, Any]) -> DistillConfig:
    from lmforge.config.report import format_errors
    from lmforge.errors import ConfigError

    try:
        return DistillFile.model_validate(tree).distill
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, DistillFile)) from None


def load_distill(path: str, overrides: list[str] = ()) -> DistillConfig:
    """Read a distill YAML file, apply ``distill.a.b=value`` overrides, validate."""
    from lmforge.config.loader import parse_override, read_yaml, set_path

    tree = read_yaml(path, "distill config")
    for text in overrides:
        set_path(tree, *parse_override(text), origin="an override")
    return validate_distill(tree)
