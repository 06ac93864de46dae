"""Generation-based evaluation of a model on conversations: the shared core of ``lmforge eval``
and of evaluation during training.

A conversation's reference is its last assistant turn and the prompt is everything before it
(earlier turns included), so a model is asked exactly what it was trained to answer. With
``generation.num_return_sequences > 1`` the answers of the samples are majority-voted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from lmforge.config.eval import EvalConfig
from lmforge.errors import DataError
from lmforge.eval.choices import split_ids  # also imported from here (benchmark, tests)


@dataclass
class Sample:
    messages: list[dict]  # the prompt: system?, (user, assistant)*, user
    reference: str
    origin: dict = field(default_factory=dict)
    where: str = ""


def split_conversation(conv) -> Sample:
    msgs = conv.as_list()
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    if last is None or last == 0:
        raise DataError("has no assistant answer to evaluate against", conv.where or None)
    return Sample(msgs[:last], msgs[last]["content"], dict(conv.origin), conv.where)


def samples_from(examples: Sequence, max_samples: int | None = None) -> list[Sample]:
    """Samples from canonical examples (only Conversations can be evaluated by generation)."""
    from lmforge.data.types import Conversation

    convs = [e for e in examples if isinstance(e, Conversation)]
    if examples and not convs:
        raise DataError("the eval data holds no conversations (generation metrics need "
                        "prompt/answer examples)")
    return [split_conversation(c) for c in convs[:max_samples]]


def evaluate(engine, samples: Sequence[Sample], ecfg: EvalConfig,
             names: Sequence[str] | None = None, gen=None,
             progress: Callable[[int], None] | None = None) -> tuple[dict, list[dict]]:
    """(metrics, one record per sample) for ``names`` (default: all of ``ecfg.metrics``)."""
    from lmforge.eval.answers import extract, reference_answer, vote
    from lmforge.eval.metrics import compute, to_label

    names = list(ecfg.metrics if names is None else names)
    gen = gen or ecfg.generation
    pattern = ecfg.answer_pattern
    several = gen.num_return_sequences > 1
    if ecfg.mode == "choices":
        outcomes = _by_choices(engine, samples, ecfg, progress)
    else:
        completions = engine.generate([s.messages for s in samples], gen, logprobs=several,
                                      progress=progress)
    predictions, answers, records = [], [], []
    for k, s in enumerate(samples):
        record = {}
        if ecfg.mode == "choices":
            text, answer, record = outcomes[k]
        else:
            comp = completions[k]
            texts = [c.text for c in comp.choices]
            extracted = [extract(t, pattern) for t in texts]
            if several:
                v = vote(extracted, [c.logprob for c in comp.choices])
                text, answer = texts[v.index], v.answer
                record["votes"] = v.counts
            else:
                text, answer = texts[0], extracted[0]
        predictions.append(text)
        answers.append(answer)
        gold = reference_answer(s.reference, pattern)
        correct = to_label(answer, ecfg.normalize) == to_label(gold, ecfg.normalize)
        records.append({"input": s.messages, "reference": s.reference, "prediction": text,
                        "extracted": answer, "correct": correct, "origin": s.origin, **record})
    references = [s.reference for s in samples]
    gold = [reference_answer(r, pattern) for r in references]
    metrics = compute(names, predictions, references, answers, gold, ecfg.normalize)
    if "perplexity" in names:
        metrics["perplexity"] = reference_perplexity(engine, samples)
    return metrics, records


def _by_choices(engine, samples, ecfg: EvalConfig, progress) -> list[tuple[str, str, dict]]:
    """(prediction, answer, extra record fields) per sample for ``eval.mode: choices``."""
    from lmforge.eval.choices import choice_set, choose

    choices = choice_set(samples, ecfg.answer_pattern, ecfg.normalize, ecfg.choices)
    return [(best, best, {"choice_scores": scores})
            for best, scores in choose(engine, samples, choices, progress)]


def reference_perplexity(engine, samples: Sequence[Sample]) -> float:
    """Perplexity of the reference answers (end-of-turn token included) given their prompts, from
    one tokenization of prompt + answer split at the prompt's end."""
    from lmforge.data.prompts import render_completion

    pairs, counts = [], []
    for s in samples:
        prompt = engine.render(s.messages)
        answer = render_completion(s.messages, s.reference, engine.template, engine.tokenizer,
                                   prompt, s.where)
        pairs.append(split_ids(engine.tokenizer, prompt, answer))
    scores = engine.loglikelihood(pairs)
    nll = [-sum(x) for x in scores]
    counts = [len(x) for x in scores]
    if not sum(counts):
        return math.nan
    return math.exp(min(sum(nll) / sum(counts), 700.0))
