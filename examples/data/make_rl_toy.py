"""Generate the toy data of the preference and RL examples in examples/tiny (deterministic; run it
to refresh): the fruit-colour / number-word mapping of make_toy.py, as

- pref_train.jsonl / pref_eval.jsonl: preference pairs (chosen = the right answer, rejected = a
  wrong one), half in the seeds' ``instruction/input/output: [chosen, rejected]`` form, half as
  ``prompt/chosen/rejected``;
- kto_train.jsonl: unpaired answers with a ``label`` (right or wrong);
- rl_prompts.jsonl / rl_prompts_eval.jsonl: prompts that ask for a digit, with the gold ``answer``
  column the reward functions read.
"""

import json
import random
from pathlib import Path

from make_toy import COLOURS, NUMBERS, NUM_PHRASES, PHRASES

DIGIT_PHRASES = ["Write {} as a digit.", "{} in digits?", "Which digit is {}?"]


def question(rng: random.Random) -> tuple[str, str, list[str]]:
    """(question, right answer, wrong answers)."""
    if rng.random() < 0.5:
        fruit = rng.choice(sorted(COLOURS))
        wrong = sorted(set(COLOURS.values()) - {COLOURS[fruit]})
        return rng.choice(PHRASES).format(fruit), COLOURS[fruit], wrong
    num = rng.choice(sorted(NUMBERS))
    wrong = sorted(set(NUMBERS.values()) - {NUMBERS[num]})
    return rng.choice(NUM_PHRASES).format(num), NUMBERS[num], wrong


def pairs(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        q, right, wrong = question(rng)
        bad = rng.choice(wrong)
        out.append({"instruction": q, "input": "", "output": [right, bad]} if i % 2 else
                   {"prompt": q, "chosen": right, "rejected": bad})
    return out


def unpaired(rng: random.Random, n: int) -> list[dict]:
    out = []
    for i in range(n):
        q, right, wrong = question(rng)
        good = i % 2 == 0
        out.append({"prompt": q, "completion": right if good else rng.choice(wrong),
                    "label": good})
    return out


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
