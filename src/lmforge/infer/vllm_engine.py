"""The ChatEngine on vLLM (``--backend vllm`` of serve, predict and eval; extra ``vllm``, CUDA).

Same interface and the same text as the transformers ChatEngine: prompts are rendered with the
template the model was trained with (the run's, found as ``ChatEngine.load`` finds it), token ids
are made by the same tokenizer and passed to vLLM as token prompts, generation stops at the
template's end-of-turn ids and EOS, and answers are decoded and cut at stop strings by the same
code (``ChatEngine._choice``). vLLM batches internally, so ``complete`` hands it every prompt at
once. ``stream_prompt`` yields the whole answer as one piece (vLLM's offline ``LLM`` has no
token stream). ``loglikelihood`` uses vLLM's prompt log-probabilities.

vLLM loads full models: a LoRA run is exported with ``lmforge export RUN --out D --merge``
first (the error says so). ``lmforge.infer.vllm_check.require_vllm`` runs before this is used.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator, Sequence

from lmforge.errors import ModelError
from lmforge.infer.engine import ChatEngine
from lmforge.infer.types import Completion, options


def sampling_params(g, stop_ids: list[int], logprobs: bool = False):
    """vLLM SamplingParams for an lmforge GenerationConfig."""
    from vllm import SamplingParams

    sampling = dict(temperature=g.temperature or 1.0, top_p=g.top_p or 1.0,
                    top_k=g.top_k if g.top_k else -1) if g.do_sample else dict(temperature=0.0)
    return SamplingParams(n=g.num_return_sequences, max_tokens=g.max_new_tokens,
                          repetition_penalty=g.repetition_penalty or 1.0, seed=g.seed,
                          stop_token_ids=list(stop_ids), skip_special_tokens=True,
                          logprobs=0 if logprobs else None, **sampling)


class VLLMEngine(ChatEngine):
    def __init__(self, llm, tokenizer, template: str | None, config, generation_config=None,
                 name: str = "model", batch_size: int = 8, max_prompt_tokens: int | None = None):
        # the model's config and generation config stand in for the model (stop ids, limits);
        # generation goes to vLLM's engine
        super().__init__(SimpleNamespace(config=config, generation_config=generation_config),
                         tokenizer, template, name, batch_size, max_prompt_tokens)
        self.llm = llm

    @classmethod
    def load(cls, path: str, adapter: str | None = None, template: str | None = None,
             dtype: str | None = None, rope_scaling=None, **kwargs) -> "VLLMEngine":
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig
        from vllm import LLM

        from lmforge.infer.loading import _template, run_config_of
        from lmforge.utils.builtin import resolve

        root = Path(resolve(path))
        if adapter or (root / "adapter_config.json").is_file():
            raise ModelError(f"{adapter or root}: vLLM loads full models, not adapters",
                             f"merge first: lmforge export {adapter or root} --out MERGED "
                             "--merge, then use MERGED")
        if kwargs.pop("precision", "fp32") != "fp32":
            raise ModelError("--precision is for the transformers backend (CPU autocast); vLLM "
                             "computes in the weights' dtype", "drop --precision with "
                             "--backend vllm")
        if rope_scaling is not None:
            raise ModelError("--rope-scaling is not supported with --backend vllm",
                             "set rope_scaling in the model's config.json")
        if not (root / "config.json").is_file():
            raise ModelError(f"{root}: no config.json (vLLM needs a model directory)")
        tokenizer = AutoTokenizer.from_pretrained(str(root))
        run_cfg = run_config_of(root)
        try:
            gen = GenerationConfig.from_pretrained(str(root))
        except OSError:
            gen = None
        llm = LLM(model=str(root), tokenizer=str(root), dtype=dtype or "auto", seed=0)
        engine = cls(llm, tokenizer, _template(run_cfg, tokenizer, template),
                     AutoConfig.from_pretrained(str(root)), gen, str(root), **kwargs)
        engine.run_config = run_cfg
        return engine

    @property
    def device(self):
        import torch

        return torch.device("cuda")

    def _run(self, ids: list[list[int]], params):
        from vllm.inputs import TokensPrompt

        with self.lock:
            return self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], params,
                                     use_tqdm=False)

    def complete(self, prompts: Sequence[str], gen=None, logprobs: bool = False,
                 progress: Callable[[int], None] | None = None, stop: Sequence[str] = (),
                 **overrides) -> list[Completion]:
        g = options(gen, **overrides)
        ids = [self.encode(p) for p in prompts]
        outs = self._run(ids, sampling_params(g, self.stop_ids, logprobs))
        results = []
        for prompt_ids, out in zip(ids, outs):
            choices = []
            for o in out.outputs:
                choice = self._choice(list(o.token_ids), list(stop))
                if logprobs and o.token_ids:
                    choice.logprob = o.cumulative_logprob / len(o.token_ids)
                choices.append(choice)
            results.append(Completion(len(prompt_ids), choices))
        if progress is not None:
            progress(len(prompts))
        return results

    def stream_prompt(self, prompt: str, gen=None, stop: Sequence[str] = (),
                      usage: dict | None = None, **overrides) -> Iterator[str]:
        g = options(gen, **overrides)
        if g.num_return_sequences != 1:
            raise ValueError("stream() produces one answer: num_return_sequences must be 1")
        done = self.complete([prompt], g, stop=stop)[0]
        choice = done.choices[0]
        if choice.text:
            yield choice.text
        if usage is not None:
            usage.update(prompt_tokens=done.prompt_tokens,
                         completion_tokens=len(choice.token_ids),
                         finish_reason=choice.finish_reason)

    def loglikelihood(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[list[float]]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outs = self._run([list(p) + list(c) for p, c in pairs], params)
        scores = []
        for (prompt, cont), out in zip(pairs, outs):
            seq = list(prompt) + list(cont)
            per = out.prompt_logprobs or []
            scores.append([per[k][seq[k]].logprob for k in range(len(prompt), len(seq))])
        return scores
