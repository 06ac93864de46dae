"""Generate the toy data of the preference and RL examples in examples/tiny (deterministic; run it
to refresh):

- pref_train.jsonl / pref_eval.jsonl: short film reviews, chosen = a positive one, rejected = a
  negative one (the seeds' "write positive reviews" task in miniature, learnable by the tiny
  model in a few steps), half in the seeds' ``instruction/input/output: [chosen, rejected]`` form,
  half as ``prompt/chosen/rejected``;
- kto_train.jsonl: single reviews with a ``label`` (positive = desirable);
- rl_prompts.jsonl / rl_prompts_eval.jsonl: prompts that ask for a digit (number words of
  make_toy.py), with the gold ``answer`` column the reward functions read.
"""

import json
import random
from pathlib import Path

from make_toy import NUMBERS

DIGIT_PHRASES = ["Write {} as a digit.", "{} in digits?", "Which digit is {}?"]


POSITIVE = ["good", "great", "happy", "wonderful", "lovely", "fun"]
NEGATIVE = ["bad", "terrible", "sad", "boring", "awful", "dull"]
NOUNS = ["movie", "film", "story", "acting", "music", "ending"]
TITLES = ["Red River", "Blue Bird", "The Cat", "Seven Apples", "Green Dog", "Nine Lives"]
ASKS = ["Write a short review of {}.", "Review the film {}.", "What did you think of {}?"]


def review(rng: random.Random, words: list[str]) -> str:
    a, b = rng.sample(words, 2)
    n1, n2 = rng.sample(NOUNS, 2)
    return f"A {a} {n1} with {b} {n2}."


def ask(rng: random.Random) -> str:
    return rng.choice(ASKS).format(rng.choice(TITLES))


def pairs(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        q, good, bad = ask(rng), review(rng, POSITIVE), review(rng, NEGATIVE)
        out.append({"instruction": q, "input": "", "output": [good, bad]} if i % 2 else
                   {"prompt": q, "chosen": good, "rejected": bad})
    return out


def unpaired(rng: random.Random, n: int) -> list[dict]:
    return [{"prompt": ask(rng), "completion": review(rng, POSITIVE if i % 2 == 0 else NEGATIVE),
             "label": i % 2 == 0} for i in range(n)]


def prompts(rng: random.Random, n: int) -> list[dict]:
    words = {w: d for d, w in NUMBERS.items()}
    out = []
    for _ in range(n):
        word = rng.choice(sorted(words))
        out.append({"prompt": rng.choice(DIGIT_PHRASES).format(word), "answer": words[word]})
    return out


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(7)
    files = {"pref_train.jsonl": pairs(rng, 128), "pref_eval.jsonl": pairs(rng, 32),
             "kto_train.jsonl": unpaired(rng, 128), "rl_prompts.jsonl": prompts(rng, 64),
             "rl_prompts_eval.jsonl": prompts(rng, 16)}
    for name, rows in files.items():
        with open(here / name, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
