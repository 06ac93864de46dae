"""Mean VADER sentiment of review continuations on the held-out prompts, for one or more models.

The same measurement for the untuned base and for the GRPO / PPO runs (each a run directory,
a merged export or a built-in model), so the numbers compare directly: every prompt of
examples/positive_reviews/data/eval.jsonl is answered ``--samples`` times by sampling (temperature
1 over the whole vocabulary, fixed seed: the same for every model, whatever top_k its RL run
sampled with) and each continuation is scored with lmforge's built-in ``sentiment`` reward (VADER
compound, -1 .. 1).

    python examples/positive_reviews/score.py builtin:smollm2-135m-instruct runs/positive-grpo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).parent


def score(path: str, prompts: list[str], samples: int, max_new_tokens: int,
          seed: int) -> dict:
    from lmforge.infer.engine import ChatEngine
    from lmforge.infer.types import options
    from lmforge.rewards.builtin import sentiment

    engine = ChatEngine.load(path, batch_size=16)
    gen = options(max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0,
                  num_return_sequences=samples, seed=seed)
    outs = engine.generate([[{"role": "user", "content": p}] for p in prompts], gen)
    texts = [c.text for o in outs for c in o.choices]
    values = sentiment(texts)
    return {"model": path, "mean_sentiment": sum(values) / len(values),
            "positive_share": sum(v > 0.05 for v in values) / len(values),
            "examples": texts[:3]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="run directories, exports or builtin:<name>")
    p.add_argument("--prompts", type=Path, default=HERE / "data" / "eval.jsonl")
    p.add_argument("--samples", type=int, default=2, help="continuations per prompt")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the results here")
    a = p.parse_args(argv)
    prompts = [json.loads(line)["prompt"] for line in a.prompts.open(encoding="utf-8")
               if line.strip()]
    results = [score(m, prompts, a.samples, a.max_new_tokens, a.seed) for m in a.models]
    print(f"{'model':<40} {'mean sentiment':>15} {'positive':>9}")
    for r in results:
        print(f"{r['model']:<40} {r['mean_sentiment']:>15.3f} {r['positive_share']:>9.2f}")
    for r in results:
        print(f"\n{r['model']}:\n  " + "\n  ".join(repr(t) for t in r["examples"]))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
