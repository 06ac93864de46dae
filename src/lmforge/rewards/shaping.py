"""Built-in reward shaping: penalties (<= 0) that users add by name next to the task reward, so a
policy cannot raise its reward by degenerate text. Each is 0 for a well-formed completion.

- ``repetition_penalty``: the share of the completion's word n-grams that repeat an earlier one
  ("great great great", a sentence said twice), times ``-scale``;
- ``length_bounds``: 0 between ``min_words`` and ``max_words`` words, then ``-scale`` times the
  relative distance to the nearer bound (at most ``-scale``);
- ``on_task``: ``-scale`` when the completion addresses the reader or talks as an assistant
  ("you", "your", "I'm glad", "thank you", ...: an answer to someone, not a continuation of the
  text), minus ``scale`` times the share of its word 4-grams copied from the prompt (repeating the
  prompt instead of continuing it); at most ``-scale`` in all.

    reward_functions:
      - sentiment
      - {function: repetition_penalty, weight: 1.0}
      - {function: on_task, kwargs: {scale: 1.0}}
      - {function: length_bounds, kwargs: {min_words: 8, max_words: 60}}
"""

from __future__ import annotations

from lmforge.errors import ConfigError
from lmforge.eval.diversity import ngrams, words
from lmforge.rewards.builtin import completion_text

ADDRESS_WORDS = ("you", "your", "yours", "yourself", "you're", "you've", "you'll", "you'd",
                 "ya", "u")
ASSISTANT_PHRASES = ("i'm glad", "i am glad", "i'm so glad", "thank you", "thanks for",
                     "i hope you", "let me know", "as an ai", "happy to help", "i'm sorry")


def _check_scale(name: str, scale: float) -> None:
    if scale < 0:
        raise ConfigError(f"reward {name}: scale must be >= 0 (it is the size of a penalty)")


def repeated_share(text: str, n: int) -> float:
    """The share of the word n-grams of ``text`` that already occurred earlier in it."""
    grams = ngrams(words(text), n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def repetition_penalty(completions: list, n: int = 2, scale: float = 1.0,
                       **kwargs) -> list[float]:
    """``-scale`` x the share of repeated word n-grams (0 for text that never repeats itself)."""
    _check_scale("repetition_penalty", scale)
    if n < 1:
        raise ConfigError("reward repetition_penalty: n must be at least 1")
    return [-scale * repeated_share(completion_text(c), n) for c in completions]


def length_bounds(completions: list, min_words: int | None = None, max_words: int | None = None,
                  scale: float = 1.0, **kwargs) -> list[float]:
    """0 inside [min_words, max_words]; outside, ``-scale`` x the distance relative to the
    bound, capped at ``-scale``."""
    _check_scale("length_bounds", scale)
    if min_words is None and max_words is None:
        raise ConfigError("reward length_bounds: give kwargs min_words and/or max_words")
    if (min_words is not None and min_words < 1) or (max_words is not None and max_words < 1) \
            or (min_words and max_words and min_words > max_words):
        raise ConfigError("reward length_bounds: need 1 <= min_words <= max_words")

    def penalty(count: int) -> float:
        if min_words is not None and count < min_words:
            return -scale * (min_words - count) / min_words
        if max_words is not None and count > max_words:
            return -scale * min(1.0, (count - max_words) / max_words)
        return 0.0

    return [penalty(len(words(completion_text(c)))) for c in completions]


def addresses_reader(text: str, address_words=ADDRESS_WORDS, phrases=ASSISTANT_PHRASES) -> bool:
    found = words(text)
    joined = " " + " ".join(found) + " "
    return any(w in address_words for w in found) or \
        any(f" {' '.join(words(p))} " in joined for p in phrases)


def echo_share(text: str, prompt: str, n: int = 4) -> float:
    """The share of the word n-grams of ``text`` that also occur in ``prompt``."""
    grams = ngrams(words(text), n)
    if not grams:
        return 0.0
    seen = set(ngrams(words(prompt), n))
    return sum(g in seen for g in grams) / len(grams)


def on_task(completions: list, prompts: list | None = None, scale: float = 1.0,
            address_words: list[str] | None = None, phrases: list[str] | None = None,
            echo_n: int = 4, **kwargs) -> list[float]:
    """A continuation stays on task: it does not address the reader or answer like an assistant
    (``-scale``) and does not copy the prompt (``-scale`` x the share of copied word
    ``echo_n``-grams); at most ``-scale`` in all."""
    _check_scale("on_task", scale)
    addr = tuple(w.lower() for w in (address_words if address_words is not None
                                     else ADDRESS_WORDS))
    phr = tuple(phrases if phrases is not None else ASSISTANT_PHRASES)
    prompts = list(prompts) if prompts is not None else [""] * len(completions)
    out = []
    for c, p in zip(completions, prompts):
        text = completion_text(c)
        value = -scale * float(addresses_reader(text, addr, phr))
        value -= scale * echo_share(text, completion_text(p), echo_n)
        out.append(max(-scale, value))
    return out


SHAPING = {f.__name__: f for f in (repetition_penalty, length_bounds, on_task)}
