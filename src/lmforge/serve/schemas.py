"""Request bodies of the OpenAI API subset we serve, and the response objects.

Unknown fields are ignored, as OpenAI-compatible servers commonly do (clients send options such
as ``frequency_penalty`` or ``user`` that do not change a local model's answer). Fields whose
value would change the answer but that we cannot honour are rejected with a 400 instead.

Generation: ``temperature`` 0 means greedy; when ``temperature`` is omitted the server's
defaults apply (greedy unless the run's eval.generation samples). ``top_k`` and
``repetition_penalty`` are accepted as extensions (as vLLM does).
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Body):
    type: Literal["text"] = Field(description="only text parts are supported")
    text: str


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[dict] | None = None  # an assistant's calls (OpenAI form)
    tool_call_id: str | None = None  # a tool result: the call it answers
    name: str | None = None

    @model_validator(mode="after")
    def _needs_content(self):
        # only an assistant turn may come without content (OpenAI: tool calls); a user/system
        # message without it is a malformed request, not an empty prompt
        if self.content is None and self.role != "assistant":
            raise ValueError(f"content is required for a {self.role} message")
        return self

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""

    def as_dict(self) -> dict:
        """The message as OpenAI spells it (read by ``data.formats``, tool turns included)."""
        role = "system" if self.role == "developer" else self.role
        out = {"role": role, "content": self.text()}
        out.update({k: v for k in ("tool_calls", "tool_call_id", "name")
                    if (v := getattr(self, k)) is not None})
        return out


class StreamOptions(_Body):
    include_usage: bool = False


class Sampling(_Body):
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0)
    seed: int | None = None
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool | int | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences")
        return [s for s in stops if s]

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v):
        if v:
            raise ValueError("logprobs are not supported by this server")
        return v

    def stops(self) -> list[str]:
        return list(self.stop or [])


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list | None = None  # JSON schemas, given to the chat template
    tool_choice: str | dict | None = None
    parallel_tool_calls: bool | None = None  # accepted; the model may write several calls

    @field_validator("tool_choice")
    @classmethod
    def _choice(cls, v):
        if v not in (None, "auto", "none"):
            raise ValueError("only 'auto' and 'none' are supported (a local model cannot be "
                             "forced to call a tool)")
        return v

    def tool_list(self) -> list | None:
        """The tools the template gets (none with tool_choice 'none')."""
        return None if self.tool_choice == "none" else (self.tools or None)

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(Sampling):
    prompt: str | list[str] = Field(description="a prompt or a list of prompts (raw text, no "
                                    "chat template)")
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _some(cls, v):
        if isinstance(v, list) and not v:
            raise ValueError("must not be an empty list")
        return v

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def limit(self) -> int | None:
        return self.max_tokens


# ---- responses -------------------------------------------------------------------------------
def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_message(text: str, calls: list[dict] | None = None) -> dict:
    """An assistant message: the text, or (``calls``: OpenAI-form tool calls) the text outside
    the calls (None when empty) and the calls."""
    if not calls:
        return {"role": "assistant", "content": text}
    return {"role": "assistant", "content": text or None, "tool_calls": calls}


def chat_response(rid: str, model: str, choices: list[tuple[dict, str]], prompt_tokens: int,
                  completion_tokens: int) -> dict:
    """``choices``: (message, finish_reason) pairs."""
    return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": None,
            "choices": [{"index": i, "message": message, "logprobs": None,
                         "finish_reason": reason}
                        for i, (message, reason) in enumerate(choices)],
            "usage": usage(prompt_tokens, completion_tokens)}


def chat_chunk(rid: str, model: str, created: int, delta: dict | None,
               finish_reason: str | None = None, use: dict | None = None) -> dict:
    chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
             "system_fingerprint": None,
             "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                   "finish_reason": finish_reason}]}
    if use is not None:
        chunk["usage"] = use
    return chunk


def text_response(rid: str, model: str, choices: list[tuple[str, str]], prompt_tokens: int,
                  completion_tokens: int) -> dict:
    return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
            "system_fingerprint": None,
            "choices": [{"index": i, "text": text, "logprobs": None, "finish_reason": reason}
                        for i, (text, reason) in enumerate(choices)],
            "usage": usage(prompt_tokens, completion_tokens)}


def text_chunk(rid: str, model: str, created: int, text: str | None,
               finish_reason: str | None = None, use: dict | None = None) -> dict:
    chunk = {"id": rid, "object": "text_completion", "created": created, "model": model,
             "system_fingerprint": None,
             "choices": [] if text is None else [{"index": 0, "text": text, "logprobs": None,
                                                  "finish_reason": finish_reason}]}
    if use is not None:
        chunk["usage"] = use
    return chunk


def model_card(name: str, created: int) -> dict:
    return {"id": name, "object": "model", "created": created, "owned_by": "lmforge"}
