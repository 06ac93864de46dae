"""Score review continuations on the held-out openings, for the base model and the tuned runs.

The same measurement for the untuned base and for the GRPO / PPO runs (each a run directory, a
merged export or a built-in model), so the numbers compare directly. Every opening of
examples/positive_reviews/data/eval.jsonl is given to the model as raw text (no chat template:
the model continues the review, as the RL runs with ``prompt_template: raw`` were trained) and
continued with two fixed decoding settings, the same for every model:

- ``greedy``: the likeliest token at each step;
- ``sampled``: temperature 1, top_k 50, seed 0 (what the RL rollouts sample with).

For each setting it reports the mean VADER compound (lmforge's built-in ``sentiment`` reward,
-1 .. 1), the share positive (compound > 0.05), distinct-1/2, the share of the most frequent
opening sentence and the most frequent opening 4 words, the mean length in words, and 10 sample
continuations (lmforge.eval.diversity does the counting).

    python examples/positive_reviews/score.py builtin:smollm2-135m-instruct runs/positive-grpo
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

HERE = Path(__file__).parent
DECODING = {"greedy": {"do_sample": False},
            "sampled": {"do_sample": True, "temperature": 1.0, "top_k": 50, "top_p": 1.0}}
_SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)|\n")


def first_sentence(text: str) -> str:
    """The continuation's first sentence as lower-cased words (punctuation dropped)."""
    from lmforge.eval.diversity import words

    return " ".join(words(_SENTENCE_END.split(text.strip(), maxsplit=1)[0]))


def measure(texts: list[str]) -> dict:
    """Sentiment and diversity numbers of a list of continuations (pure: no model)."""
    from lmforge.eval.diversity import diagnostics
    from lmforge.rewards.builtin import sentiment

    values = sentiment(texts)
    found = diagnostics(texts)
    sentence, count = Counter(first_sentence(t) for t in texts).most_common(1)[0]
    return {"mean_sentiment": sum(values) / len(values),
            "positive_share": sum(v > 0.05 for v in values) / len(values),
            "distinct_1": found["distinct_1"], "distinct_2": found["distinct_2"],
            "top_sentence_share": count / len(texts), "top_sentence": sentence,
            "top_opening_share": found["top_opening_share"], "top_opening": found["top_opening"],
            "mean_words": found["mean_words"], "samples": len(texts)}


def score(path: str, prompts: list[str], max_new_tokens: int, seed: int,
          shown: int = 10) -> dict:
    from lmforge.infer.engine import ChatEngine
    from lmforge.infer.types import options

    engine = ChatEngine.load(path, batch_size=16)
    out = {"model": path}
    for name, setting in DECODING.items():
        gen = options(max_new_tokens=max_new_tokens, seed=seed, **setting)
        texts = [c.choices[0].text for c in engine.complete(prompts, gen)]
        out[name] = {**measure(texts),
                     "examples": [{"opening": p, "continuation": t}
                                  for p, t in list(zip(prompts, texts))[:shown]]}
    return out


def table(results: list[dict]) -> str:
    cols = [("mean_sentiment", "compound", ".3f"), ("positive_share", "positive", ".2f"),
            ("distinct_1", "dist-1", ".2f"), ("distinct_2", "dist-2", ".2f"),
            ("top_sentence_share", "top sent.", ".2f"), ("top_opening_share", "top 4-gram", ".2f"),
            ("mean_words", "words", ".1f")]
    lines = [f"{'model':<36} {'decoding':<8} " + " ".join(f"{c[1]:>10}" for c in cols)]
    for r in results:
        for name in DECODING:
            lines.append(f"{r['model'][-36:]:<36} {name:<8} "
                         + " ".join(f"{r[name][k]:>10{f}}" for k, _, f in cols))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="run directories, exports or builtin:<name>")
    p.add_argument("--prompts", type=Path, default=HERE / "data" / "eval.jsonl")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="score only the first N openings")
    p.add_argument("--json", type=Path, help="also write the results here")
    a = p.parse_args(argv)
    prompts = [json.loads(line)["prompt"] for line in a.prompts.open(encoding="utf-8")
               if line.strip()][:a.limit]
    results = [score(m, prompts, a.max_new_tokens, a.seed) for m in a.models]
    print(table(results))
    for r in results:
        for name in DECODING:
            print(f"\n{r['model']} ({name}):")
            for e in r[name]["examples"]:
                print(f"  {e['opening']} || {e['continuation']!r}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
