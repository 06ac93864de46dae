"""Generate the small pretraining corpus used by examples/tiny/pt.yaml (deterministic).

Short documents from a tiny grammar about fruit colours and counting, so a tiny model's loss
falls visibly within a minute. Run to refresh: python examples/data/make_corpus.py
"""

import json
import random
from pathlib import Path

COLOURS = {"apple": "red", "banana": "yellow", "cherry": "red", "lime": "green",
           "grape": "purple", "orange": "orange", "plum": "purple", "kiwi": "green"}
NUMBERS = "zero one two three four five six seven eight nine ten".split()


def sentence(rng: random.Random) -> str:
    kind = rng.randrange(3)
    fruit = rng.choice(sorted(COLOURS))
    if kind == 0:
        return f"The {fruit} is {COLOURS[fruit]}."
    if kind == 1:
        start = rng.randrange(6)
        return "We count " + ", ".join(NUMBERS[start:start + 4]) + "."
    n = rng.randrange(2, 10)
    return f"I have {NUMBERS[n]} {fruit}s and they are {COLOURS[fruit]}."


def main() -> None:
    rng = random.Random(0)
    out = Path(__file__).parent / "tiny_corpus.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for _ in range(400):
            text = " ".join(sentence(rng) for _ in range(rng.randint(1, 5)))
            f.write(json.dumps({"text": text}) + "\n")


if __name__ == "__main__":
    main()
