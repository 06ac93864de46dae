"""Generate the movie-review prompts of examples/positive_reviews (``data.format: prompt``).

Each prompt asks the model to continue the opening of a review of a (made-up) film. The openings
lean every way: neutral ("The soundtrack of X"), doubtful ("I had low expectations for X, and")
and negative ("I walked out of X after an hour because"), so an untuned model writes reviews of
mixed sentiment. Reinforcement learning with the VADER sentiment reward (lmforge's built-in
``sentiment``) then makes the continuations positive. Train and eval prompts use different films.

Deterministic. Usage: python examples/positive_reviews/make_prompts.py [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

PROMPT = "Continue this movie review in one or two sentences: \"{opening}\""

OPENINGS = [
    "I went to see {t} last weekend, and honestly",
    "The acting in {t} was",
    "After two hours of {t}, I",
    "{t} is the kind of film that",
    "My friends warned me about {t}, but",
    "The ending of {t}",
    "I had low expectations for {t}, and",
    "The soundtrack of {t}",
    "Halfway through {t}, I realised that",
    "I walked out of {t} after an hour because",
    "The critics hated {t}, and",
    "The plot of {t} makes no sense until",
    "Nobody in the cinema laughed during {t}, which",
    "The director's new film {t}",
    "I fell asleep twice during {t}, but",
    "{t} tries very hard to be clever, and",
]
TRAIN_FILMS = ["Midnight Harbor", "The Glass Orchard", "Paper Kingdoms", "Salt and Thunder",
               "The Last Lighthouse", "Winter Circus", "Copper Sky", "The Quiet Engine",
               "Neon Pilgrims", "A Map of Small Fires", "The Velvet Heist", "Lanterns at Dawn",
               "Iron Meadow", "The Cartographer's Son"]
EVAL_FILMS = ["Echoes of Marrow Bay", "The Hollow Crown Affair", "Summer of Broken Kites",
              "Starlight Freight", "The Ninth Lantern"]


def prompts(films: list[str], rng: random.Random) -> list[dict]:
    rows = [{"prompt": PROMPT.format(opening=o.format(t=f)), "film": f}
            for f, o in itertools.product(films, OPENINGS)]
    rng.shuffle(rows)
    return rows


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    p.add_argument("--eval", type=int, default=32, help="eval prompts kept (of 80)")
    a = p.parse_args(argv)
    rng = random.Random(0)
    train, evals = prompts(TRAIN_FILMS, rng), prompts(EVAL_FILMS, rng)[:a.eval]
    write(a.out / "train.jsonl", train)
    write(a.out / "eval.jsonl", evals)
    print(f"wrote {len(train)} train and {len(evals)} eval prompts to {a.out}")


if __name__ == "__main__":
    main()
