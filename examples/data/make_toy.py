"""Generate the toy instruction datasets used by examples/tiny (deterministic; run to refresh).

The task is a fixed mapping (fruit -> colour, number -> word) asked in several phrasings, so a
tiny model can learn it in under a minute and accuracy shows whether it did.
"""

import json
import random
from pathlib import Path

COLOURS = {"apple": "red", "banana": "yellow", "cherry": "red", "lime": "green",
           "grape": "purple", "orange": "orange", "plum": "purple", "kiwi": "green"}
NUMBERS = {str(i): w for i, w in enumerate("zero one two three four five six seven eight nine"
                                           .split())}
PHRASES = ["What colour is the {}?", "Tell me the colour of a {}.", "{}: which colour?",
           "Colour of {}?"]
NUM_PHRASES = ["Write {} as a word.", "Spell the number {}.", "{} in words?"]


def rows(rng: random.Random, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            fruit = rng.choice(sorted(COLOURS))
            out.append({"instruction": rng.choice(PHRASES).format(fruit), "input": "",
                        "output": COLOURS[fruit]})
        else:
            num = rng.choice(sorted(NUMBERS))
            out.append({"instruction": rng.choice(NUM_PHRASES).format(num), "input": "",
                        "output": NUMBERS[num]})
    return out


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(0)
    for name, n in (("toy_train.jsonl", 320), ("toy_eval.jsonl", 40)):
        with open(here / name, "w", encoding="utf-8") as f:
            for r in rows(rng, n):
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
