"""What the ChatEngine returns, and how generation settings are given to it."""

from __future__ import annotations

from dataclasses import dataclass, field

from lmforge.config.eval import GenerationConfig


@dataclass
class Choice:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (end-of-turn/EOS) or "length"
    logprob: float | None = None  # mean log-probability per generated token (stop token included)


@dataclass
class Completion:
    prompt_tokens: int
    choices: list[Choice] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.choices[0].text


def options(gen: GenerationConfig | None = None, **overrides) -> GenerationConfig:
    """Generation settings: ``gen`` (or the defaults) with ``overrides`` applied, validated."""
    base = gen.model_dump() if gen is not None else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return GenerationConfig.model_validate(base)
