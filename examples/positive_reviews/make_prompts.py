"""Generate the film-review openings of examples/positive_reviews (``data.format: prompt``).

Each row's ``prompt`` is only the opening of a review, no instruction around it: the RL configs
use ``prompt_template: raw``, so the policy continues the review text itself (the classic
controlled-generation setting, GPT-2 continuing IMDB reviews), rather than answering a request.

The openings are written by hand in this file (no review corpus is installed offline); the films
are made up. They lean every way: neutral ("The soundtrack of X"), doubtful ("I had low
expectations for X, and") and negative ("I walked out of X after an hour because"), so an untuned
model continues them with mixed sentiment. The held-out split (eval.jsonl) uses *other* openings
and *other* films than train.jsonl: no held-out prompt, opening sentence or film is seen in
training (tests/unit/test_examples.py checks it).

Deterministic. Usage: python examples/positive_reviews/make_prompts.py [--out DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

TRAIN_OPENINGS = [
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
    "The first half hour of {t} drags, and",
    "I rented {t} on a rainy Sunday and",
    "Watching {t} with my parents was",
    "The lead actress in {t} gives a performance that",
    "The trailer for {t} promised a thriller, but",
    "The dialogue in {t} is",
    "Every scene in {t} looks",
    "The second act of {t}",
    "I expected {t} to be another lazy sequel, yet",
    "The special effects in {t} are",
    "My brother dragged me to {t}, and",
    "The villain of {t} is",
    "It took me a week to decide what I think of {t}:",
    "The reviews of {t} were mixed, so I",
    "Two minutes into {t}, the audience",
    "The book was better, everyone says, but {t}",
    "The pacing of {t} is uneven, and",
    "The cast of {t} seems to",
    "I saw {t} at a late screening and",
    "The cinematography of {t}",
]
EVAL_OPENINGS = [
    "The opening scene of {t}",
    "I did not want to like {t}, and",
    "The score of {t} is",
    "By the time the credits of {t} rolled, I",
    "The script of {t} has problems, but",
    "My wife fell asleep during {t}, while I",
    "The young actor who plays the son in {t}",
    "The last twenty minutes of {t} are",
    "I almost skipped {t} after the bad reviews, and",
    "The costumes in {t}",
    "Nothing about the poster of {t} prepared me for",
    "The humour in {t} is",
    "On paper, {t} should not work, and",
    "The editing of {t} feels",
    "I watched {t} twice this week, because",
    "The middle of {t} sags a little, but",
]
TRAIN_FILMS = ["Midnight Harbor", "The Glass Orchard", "Paper Kingdoms", "Salt and Thunder",
               "The Last Lighthouse", "Winter Circus", "Copper Sky", "The Quiet Engine",
               "Neon Pilgrims", "A Map of Small Fires"]
EVAL_FILMS = ["Echoes of Marrow Bay", "The Hollow Crown Affair", "Summer of Broken Kites",
              "Starlight Freight"]


def prompts(openings: list[str], films: list[str], rng: random.Random) -> list[dict]:
    rows = [{"prompt": o.format(t=f), "opening": o, "film": f}
            for f, o in itertools.product(films, openings)]
    rng.shuffle(rows)
    return rows


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    a = p.parse_args(argv)
    rng = random.Random(0)
    train = prompts(TRAIN_OPENINGS, TRAIN_FILMS, rng)
    evals = prompts(EVAL_OPENINGS, EVAL_FILMS, rng)
    write(a.out / "train.jsonl", train)
    write(a.out / "eval.jsonl", evals)
    print(f"wrote {len(train)} train and {len(evals)} held-out openings to {a.out}")


if __name__ == "__main__":
    main()
