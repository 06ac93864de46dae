"""Generate a small synthetic arithmetic / logic task with gold answers for examples/distill.

Three kinds of problems, each with a unique ``id``, a ``question``, optional multiple-choice
``options`` and the gold ``answer``:
  - arithmetic: "What is 17 + 4 * 6?"                        -> "41"
  - ordering:   "Ana is taller than Ben. ... Who is shortest?" -> "Cara"
  - choice:     "Which number is divisible by 7?" + options    -> "C"
Deterministic (seeded). Usage: python examples/distill/make_task.py [--n 120] [--out FILE]

``--eval`` writes held-out problems in the ``prompt_response`` format instead, the prompt being what
the distilled dataset's student sees (question, then one option per line) and the response the
gold ``Answer: <answer>`` line, for ``lmforge eval`` with ``eval.answer_pattern``:
    python examples/distill/make_task.py --eval --n 90 --seed 1 --out examples/distill/eval.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

NAMES = ["Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana"]
TRAITS = [("taller", "tallest", "shortest"), ("older", "oldest", "youngest"),
          ("faster", "fastest", "slowest")]


def arithmetic(rng: random.Random) -> dict:
    a, b, c = rng.randint(2, 40), rng.randint(2, 12), rng.randint(2, 12)
    op = rng.choice(["+", "-"])
    value = a + b * c if op == "+" else a - b * c
    return {"kind": "arithmetic", "question": f"What is {a} {op} {b} * {c}?",
            "answer": str(value)}


def ordering(rng: random.Random) -> dict:
    people = rng.sample(NAMES, 3)  # people[0] > people[1] > people[2]
    more, top, bottom = rng.choice(TRAITS)
    facts = [f"{people[0]} is {more} than {people[1]}.", f"{people[1]} is {more} than {people[2]}."]
    rng.shuffle(facts)
    ask_top = rng.random() < 0.5
    return {"kind": "ordering",
            "question": " ".join(facts) + f" Who is the {top if ask_top else bottom}?",
            "answer": people[0] if ask_top else people[2]}


def choice(rng: random.Random) -> dict:
    k = rng.choice([3, 4, 7])
    right = k * rng.randint(2, 14)
    wrong = set()
    while len(wrong) < 3:
        x = rng.randint(10, 99)
        if x % k:
            wrong.add(x)
    options = sorted(wrong | {right})
    rng.shuffle(options)
    letters = "ABCD"
    return {"kind": "choice", "question": f"Which number is divisible by {k}?",
            "options": [f"{letters[i]}) {x}" for i, x in enumerate(options)],
            "answer": letters[options.index(right)]}


def problems(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    makers = [arithmetic, ordering, choice]
    return [{"id": f"p{i:04d}", **makers[i % 3](rng)} for i in range(n)]


def as_eval(row: dict) -> dict:
    """The student's prompt (as distill.student_prompt renders it) and the gold answer line."""
    prompt = "\n".join([row["question"], *row.get("options", [])])
    return {"id": row["id"], "kind": row["kind"], "prompt": prompt,
            "response": f"Answer: {row['answer']}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120, help="number of problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "problems.jsonl"))
    parser.add_argument("--eval", action="store_true", help="write prompt/response rows for "
                        "lmforge eval instead of distill inputs")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for row in problems(args.n, args.seed):
            f.write(json.dumps(as_eval(row) if args.eval else row, ensure_ascii=False) + "\n")
    print(f"wrote {args.n} problems to {out}")


if __name__ == "__main__":
    main()
