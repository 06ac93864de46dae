"""``data.truncation`` (with ``max_length``, ``max_source_length``, ``max_target_length``) for the
preference and RL stages, with the meaning stage sft gives it (``data/encode.py``):

- drop: an over-long example is left out (counted);
- truncate_prompt: the prompt loses tokens from the left, keeping at least a quarter of
  max_length; an answer still too long is then cut from the right;
- truncate_response: the prompt is kept (up to max_length) and the answers are cut from the right.

The token budget is computed by the SFT encoder's own function (``encode.limits``) from ONE
tokenization of prompt + answer, so the two meanings cannot drift apart. A preference pair is fitted
as one example (the prompt is shared, the longer answer sets the answer budget). Unlike SFT, a
preference prompt loses tokens, not whole earlier turns.

rm gets the fitted token ids; dpo/kto/orpo get the fitted texts (cut at token boundaries), which
trl tokenizes again (its own keep-start truncation then has nothing left to cut, up to a token
where the cut text re-tokenizes differently). ppo/grpo prompts only lose tokens from the left
(``cut_prompts``; the validator refuses the other modes for them).
"""

from __future__ import annotations

import dataclasses
import logging

from lmforge.data.encode import Settings, limits

log = logging.getLogger(__name__)


def settings_for(cfg, reserve: int = 0) -> Settings:
    """The SFT length settings of ``cfg``, less ``reserve`` tokens the trainer adds itself."""
    s = Settings.from_config(cfg)
    return dataclasses.replace(s, max_length=max(1, s.max_length - reserve))


def added_tokens(tokenizer) -> int:
    """Special tokens a trl trainer may add around a text (the tokenizer's own, or a BOS that
    ORPO prepends)."""
    auto = len(tokenizer("")["input_ids"])
    return max(auto, 1 if tokenizer.bos_token_id is not None else 0)


def _encode(prompt: str, answer: str, tokenizer):
    """(ids, offsets, index of the first answer token) from one tokenization."""
    enc = tokenizer(prompt + answer, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    start = next((i for i, (s, _) in enumerate(offsets) if s >= len(prompt)), len(ids))
    return ids, offsets, start


def budget(src: int, tgt: int, settings: Settings) -> tuple[int, int] | None:
    """(prompt tokens, answer tokens) to keep, or None to drop (nothing of the answer left)."""
    import numpy as np

    keep_src, keep_tgt, dropped = (int(x[0]) for x in limits(np.array([src]),
                                                             np.array([src + tgt]), settings))
    return None if dropped or keep_tgt <= 0 else (keep_src, keep_tgt)


def fit(prompt: str, answers: list[str], tokenizer, settings: Settings):
    """(prompt text, answer texts, ids of prompt + each answer, truncated) within the budget, or
    None when the example is dropped."""
    encoded = [_encode(prompt, a, tokenizer) for a in answers]
    src = min(start for _, _, start in encoded)
    tgt = max(len(ids) - start for ids, _, start in encoded)
    kept = budget(src, tgt, settings)
    if kept is None:
        return None
    keep_src, keep_tgt = kept
    ids_out, texts = [], []
    for answer, (ids, offsets, start) in zip(answers, encoded):
        lo, hi = start - min(keep_src, start), min(len(ids), start + keep_tgt)
        ids_out.append(ids[lo:hi])
        texts.append(answer if hi == len(ids) else answer[:offsets[hi - 1][1] - len(prompt)])
    ids0, offsets0, start0 = encoded[0]
    cut = start0 - min(keep_src, start0)
    new_prompt = prompt[offsets0[cut][0]:] if cut else prompt
    truncated = cut > 0 or any(t != a for t, a in zip(texts, answers))
    return new_prompt, texts, ids_out, truncated


def fit_records(records: list, tokenizer, settings: Settings) -> tuple[list, dict]:
    """Pair/Unpaired records fitted to the budget; stats: truncated and dropped counts."""
    out, truncated, dropped = [], 0, 0
    for r in records:
        paired = hasattr(r, "chosen")
        got = fit(r.prompt, [r.chosen, r.rejected] if paired else [r.completion], tokenizer,
                  settings)
        if got is None:
            dropped += 1
            continue
        prompt, texts, _, cut = got
        truncated += cut
        if paired:
            out.append(dataclasses.replace(r, prompt=prompt, chosen=texts[0], rejected=texts[1]))
        else:
            out.append(dataclasses.replace(r, prompt=prompt, completion=texts[0]))
    if truncated or dropped:
        log.warning("%d examples truncated and %d dropped to fit data.max_length=%d "
                    "(data.truncation: %s)", truncated, dropped, settings.max_length,
                    settings.truncation)
    return out, {"truncated": truncated, "dropped": dropped}


def cut_prompts(texts: list[str], tokenizer, budget_tokens: int) -> tuple[list[str], int]:
    """Prompts of the RL stages cut to ``budget_tokens`` from the left, at a token boundary
    (the end, where the question and the assistant header are, is kept); and how many were."""
    out, cut = [], 0
    for text in texts:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        if len(offsets) > budget_tokens:
            text, cut = text[offsets[len(offsets) - budget_tokens][0]:], cut + 1
        out.append(text)
    if cut:
        log.warning("%d prompts were longer than %d tokens and lost their beginning", cut,
                    budget_tokens)
    return out, cut
