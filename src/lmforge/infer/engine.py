"""ChatEngine: one object that renders chats with the model's training template and generates.

Everything that talks to a model goes through it: ``lmforge eval``/``predict``, evaluation during
training (on the live model), multiple-choice scoring, and later chat / web UI / the API server.

- ``generate(chats)``: batched (prompts sorted by length, left padding), stops at the template's
  end-of-turn token or EOS, ``num_return_sequences`` answers per chat, optional log-probabilities.
- ``complete(texts)``: the same for raw prompt strings (no template).
- ``stream(chat)``: text pieces as they are generated (transformers' TextIteratorStreamer).
- ``loglikelihood(pairs)``: log-probabilities of given continuations (choices, vote tie-breaks).
- ``tools=``: tool schemas for the template (``generate``, ``stream``, ``render``); ``tool_calls``
  parses the template's tool-call tags back out of a text (``infer/tool_calls.py``).

Log-probabilities are the model's own (temperature 1, no top-p/k) and are computed by one scoring
pass over prompt + answer instead of keeping every step's logits during generation, which would
cost steps x batch x vocab floats. Calls are serialised by a lock (one model, many threads). A
``seed`` seeds a forked RNG: the caller's random state (a training run's) is left untouched.
"""

from __future__ import annotations

import functools
import threading
from typing import Callable, Iterator, Sequence

from lmforge.config.eval import GenerationConfig
from lmforge.infer.types import Choice, Completion, options  # noqa: F401 (re-exported)
from lmforge.infer.scoring import score_batch
from lmforge.infer.util import Cancel, seeded
from lmforge.infer.util import eval_mode as _eval_mode
from lmforge.infer.util import until_stop as _until_stop


class ChatEngine:
    def __init__(self, model, tokenizer, template: str | None, name: str = "model",
                 batch_size: int = 8, max_prompt_tokens: int | None = None,
                 precision: str = "fp32"):
        from lmforge.training.device import inference_precision

        self.model, self.tokenizer, self.template, self.name = model, tokenizer, template, name
        self.batch_size = batch_size
        # bf16: autocast on a CPU with native bf16 (2.4x a forward pass); a GPU runs the weights'
        # own dtype (bfloat16 by default there)
        self.precision = inference_precision(precision, self.device.type == "cuda")
        self.max_prompt_tokens = max_prompt_tokens
        self.stop_ids = self._stop_ids()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
            else self.stop_ids[0]
        self.lock = threading.RLock()

    @classmethod
    def load(cls, path: str, adapter: str | None = None, template: str | None = None,
             dtype: str | None = None, rope_scaling=None, **kwargs) -> "ChatEngine":
        from lmforge.infer.loading import load

        loaded = load(path, adapter=adapter, template=template, dtype=dtype,
                      rope_scaling=rope_scaling)
        engine = cls(loaded.model, loaded.tokenizer, loaded.template, loaded.name, **kwargs)
        engine.run_config = loaded.run_config
        if engine.precision == "bf16":  # CPU autocast: every pass of a model it loaded runs in it
            from lmforge.training.frozen_cast import cast_frozen_linears

            cast_frozen_linears(engine.model, inference=True)
        return engine

    run_config = None  # the RunConfig the model was trained with, when loaded from a run

    def with_template(self, template: str | None) -> "ChatEngine":
        """Use another chat template (e.g. a fine-tuned model's, to compare its base fairly)."""
        self.template = template
        self.stop_ids = self._stop_ids()
        self.__dict__.pop("call_format", None)
        return self

    @functools.cached_property
    def call_format(self):
        """The template's tool-call tags (``infer.tool_calls``); None: it takes no tools."""
        from lmforge.infer.tool_calls import call_format

        return call_format(self.template, self.tokenizer)

    def tool_calls(self, text: str) -> tuple[str, list[dict]]:
        """(content, canonical tool calls) of a generated answer."""
        from lmforge.infer.tool_calls import parse

        return parse(text, self.call_format)

    def _stop_ids(self) -> list[int]:
        from lmforge.training.common import end_of_turn_ids

        ids = list(end_of_turn_ids(self.tokenizer, self.template))
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        for extra in (eos if isinstance(eos, list) else [eos]):
            if extra is not None and extra not in ids:
                ids.append(extra)
        return ids

    @property
    def device(self):
        return next(self.model.parameters()).device

    # ---- prompts ---------------------------------------------------------------------------
    def autocast(self):
        """The context every forward pass runs under: bf16 autocast when the engine's precision
        is bf16 (a CPU with native bf16), else nothing."""
        from lmforge.training.device import cpu_autocast

        return cpu_autocast(self.precision)

    def render(self, messages: list[dict], tools=None) -> str:
        """The prompt text of a chat, ending where the assistant's answer starts (``tools``: the
        JSON schemas a tool-calling template lists; refused by a template without tools)."""
        from lmforge.data.prompts import render_prompt

        if self.template is None:
            from lmforge.errors import ModelError

            raise ModelError(f"{self.name} has no chat template, so chats cannot be rendered",
                             "pass a built-in template (--template chatml, ...)")
        if tools:
            from lmforge.infer.tool_calls import refuse_without

            refuse_without(self.call_format, self.name)
        return render_prompt(list(messages), self.template, self.tokenizer, tools or None)

    def encode(self, text: str) -> list[int]:
        """Token ids of rendered text (the template wrote the special tokens, as in training)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if self.max_prompt_tokens and len(ids) > self.max_prompt_tokens:
            ids = ids[-self.max_prompt_tokens:]
        return ids

    # ---- generation ------------------------------------------------------------------------
    def generate(self, chats: Sequence[list[dict]], gen: GenerationConfig | None = None,
                 logprobs: bool = False, progress: Callable[[int], None] | None = None,
                 stop: Sequence[str] = (), tools: Sequence | None = None,
                 **overrides) -> list[Completion]:
        """One Completion per chat, in input order. ``stop``: extra stop strings (the text ends
        before the first one; finish_reason "stop"). ``tools``: one tools list (or None) per
        chat, given to the template."""
        tools = list(tools) if tools is not None else [None] * len(chats)
        return self.complete([self.render(c, t) for c, t in zip(chats, tools)], gen, logprobs,
                             progress, stop, **overrides)

    def complete(self, prompts: Sequence[str], gen: GenerationConfig | None = None,
                 logprobs: bool = False, progress: Callable[[int], None] | None = None,
                 stop: Sequence[str] = (), **overrides) -> list[Completion]:
        """Like ``generate`` for already rendered prompt strings."""
        g = options(gen, **overrides)
        ids = [self.encode(p) for p in prompts]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        out: list[Completion | None] = [None] * len(ids)
        with self.lock, _eval_mode(self.model), seeded(g.seed, self.device):
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                results = self._generate_batch([ids[i] for i in chunk], g, logprobs,
                                               list(stop))
                for i, result in zip(chunk, results):
                    out[i] = result
                if progress is not None:
                    progress(len(chunk))
        return out  # type: ignore[return-value]

    def _kwargs(self, g: GenerationConfig, stop: Sequence[str] = ()) -> dict:
        import copy

        config = copy.deepcopy(self.model.generation_config)
        # top_k 0 must be passed as 0: transformers 5 fills None with its default of 50
        sampling = dict(temperature=g.temperature, top_p=g.top_p, top_k=g.top_k) \
            if g.do_sample else dict(temperature=None, top_p=None, top_k=None)
        config.update(max_new_tokens=g.max_new_tokens, do_sample=g.do_sample,
                      num_return_sequences=g.num_return_sequences,
                      repetition_penalty=g.repetition_penalty, eos_token_id=self.stop_ids,
                      pad_token_id=self.pad_id, use_cache=True, max_length=None,
                      stop_strings=list(stop) or None, **sampling)
        kwargs = {"generation_config": config}
        if stop:
            kwargs["tokenizer"] = self.tokenizer  # transformers matches stop strings on tokens
        return kwargs

    def left_pad(self, rows: list[list[int]]):
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r):] = torch.tensor(r)
                mask[i, width - len(r):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _generate_batch(self, rows: list[list[int]], g: GenerationConfig, logprobs: bool,
                        stop: list[str]) -> list[Completion]:
        import torch

        input_ids, mask = self.left_pad(rows)
        with torch.no_grad(), self.autocast():
            seqs = self.model.generate(input_ids=input_ids, attention_mask=mask,
                                       **self._kwargs(g, stop))
        new = seqs[:, input_ids.shape[1]:].tolist()
        n = g.num_return_sequences
        out = []
        for i, prompt in enumerate(rows):
            choices = [self._choice(t, stop) for t in new[i * n:(i + 1) * n]]
            if logprobs:
                scores = self.loglikelihood([(prompt, c.token_ids) for c in choices])
                for c, s in zip(choices, scores):
                    c.logprob = sum(s) / len(s) if s else 0.0
            out.append(Completion(len(prompt), choices))
        return out

    def _choice(self, tokens: list[int], stop: Sequence[str] = ()) -> Choice:
        ends = set(self.stop_ids)
        cut = next((k for k, t in enumerate(tokens) if t in ends), None)
        kept = tokens if cut is None else tokens[:cut + 1]
        body = kept if cut is None else kept[:-1]
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        hits = [text.find(s) for s in stop if s and s in text]
        if hits:  # token ids stay as generated: a stop string may end inside a token
            return Choice(text[:min(hits)], kept, "stop")
        return Choice(text, kept, "length" if cut is None else "stop")

    def stream(self, messages: list[dict], gen: GenerationConfig | None = None,
               stop: Sequence[str] = (), usage: dict | None = None, tools=None,
               **overrides) -> Iterator[str]:
        """Text pieces of one answer as they are generated (the same text as ``generate``)."""
        return self.stream_prompt(self.render(messages, tools), gen, stop, usage, **overrides)

    def stream_prompt(self, prompt: str, gen: GenerationConfig | None = None,
                      stop: Sequence[str] = (), usage: dict | None = None,
                      **overrides) -> Iterator[str]:
        """``stream`` for a rendered prompt string. ``usage``, when given, receives prompt_tokens,
        completion_tokens and finish_reason (as ``generate`` counts them) at the end."""
        from transformers import TextIteratorStreamer

        g = options(gen, **overrides)
        if g.num_return_sequences != 1:
            raise ValueError("stream() produces one answer: num_return_sequences must be 1")
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True,
                                        skip_special_tokens=True)
        prompt_ids = self.encode(prompt)
        input_ids, mask = self.left_pad([prompt_ids])
        errors: list[BaseException] = []
        result: list = []
        cancel = Cancel()

        def work():
            try:
                with self.lock, _eval_mode(self.model), seeded(g.seed, self.device), \
                        self.autocast():
                    result.append(self.model.generate(
                        input_ids=input_ids, attention_mask=mask, streamer=streamer,
                        stopping_criteria=cancel.criteria(), **self._kwargs(g, list(stop))))
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        done = []

        def pieces():
            yield from streamer
            done.append(True)

        try:
            yield from _until_stop(pieces(), [s for s in stop if s])
        finally:
            if not done:  # stopped early (a stop string, or the caller closed us)
                cancel.set()
                for _ in streamer:
                    pass
            thread.join()
        if errors:
            raise errors[0]
        if usage is not None and result:
            choice = self._choice(result[0][0, input_ids.shape[1]:].tolist(), stop)
            usage.update(prompt_tokens=len(prompt_ids), completion_tokens=len(choice.token_ids),
                         finish_reason=choice.finish_reason)

    # ---- scoring ---------------------------------------------------------------------------
    def loglikelihood(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[list[float]]:
        """Per-token log-probabilities of each continuation given its prompt (token ids)."""
        out: list[list[float]] = []
        with self.lock, _eval_mode(self.model):
            for start in range(0, len(pairs), self.batch_size):
                out += score_batch(self, pairs[start:start + self.batch_size])
        return out
