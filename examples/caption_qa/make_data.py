"""Generate the synthetic caption question-answering dataset of examples/caption_qa.

The seeds answer visual questions from an image's caption instead of the pixels (text only). Each
generated caption describes a scene: two people with differently coloured clothes doing different
things, a group of animals, an object, a place and the weather or time of day. The questions need
the right part of the caption: the colour of one person's clothes (not the other's), how many
animals there are (the caption writes the number as a word, the answer is a digit), what someone
holds or does, where the scene is, day or night, and yes/no questions about things that may not
be there. Answers are one word or one number, compared by accuracy.

Deterministic (seeded). Usage: python examples/caption_qa/make_data.py [--train 800] [--eval 200]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

INSTRUCTION = ("Answer the question about the picture from its caption. Reply with one word or "
               "one number only.")

PEOPLE = ["man", "woman", "boy", "girl", "old man", "old woman", "teenager", "chef", "police "
          "officer", "tourist"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "pink", "brown",
          "gray"]
CLOTHES = ["shirt", "jacket", "hat", "coat", "dress", "scarf", "sweater", "cap", "hoodie"]
ACTIONS = ["reading", "running", "laughing", "dancing", "painting", "singing", "eating",
           "sleeping", "waving", "talking", "walking", "sitting"]
HELD = ["umbrella", "kite", "guitar", "book", "camera", "ball", "balloon", "basket", "phone",
        "surfboard", "skateboard", "bicycle"]
ANIMALS = ["dog", "cat", "horse", "duck", "pigeon", "goat", "sheep", "rabbit", "cow", "goose"]
PLURAL = {"sheep": "sheep", "goose": "geese"}
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
PLACES = {"beach": "on a beach", "park": "in a park", "kitchen": "in a kitchen",
          "street": "on a busy street", "field": "in a field", "market": "at a market",
          "garden": "in a garden", "station": "at a train station", "farm": "on a farm",
          "lake": "beside a lake"}
TIMES = {"day": ["on a sunny afternoon", "in the morning", "at noon"],
         "night": ["at night", "late in the evening under street lights", "at midnight"]}


def _plural(animal: str, n: int) -> str:
    return animal if n == 1 else PLURAL.get(animal, animal + "s")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def scene(rng: random.Random) -> dict:
    p1, p2 = rng.sample(PEOPLE, 2)
    c1, c2 = rng.sample(COLORS, 2)
    w1, w2 = rng.choice(CLOTHES), rng.choice(CLOTHES)
    a1, a2 = rng.sample(ACTIONS, 2)
    animal, count = rng.choice(ANIMALS), rng.randint(1, 7)
    return {"people": [(p1, c1, w1, a1), (p2, c2, w2, a2)], "held": rng.choice(HELD),
            "holder": rng.randint(0, 1), "animal": animal, "count": count,
            "animal_color": rng.choice(COLORS), "place": rng.choice(list(PLACES)),
            "time": rng.choice(list(TIMES))}


def caption(s: dict, rng: random.Random) -> str:
    parts = []
    for i, (who, color, cloth, action) in enumerate(s["people"]):
        text = f"{_article(who).capitalize()} {who} in {_article(color)} {color} {cloth} is {action}"
        if i == s["holder"]:
            text += f" and carrying {_article(s['held'])} {s['held']}"
        parts.append(text)
    n, animal = s["count"], s["animal"]
    animals = (f"{NUMBERS[n]} {s['animal_color']} {_plural(animal, n)}")
    where = f"{PLACES[s['place']]} {rng.choice(TIMES[s['time']])}"
    order = rng.random()
    if order < 0.4:
        return f"{parts[0]} {where}, while {parts[1][0].lower()}{parts[1][1:]}. " \
               f"Nearby there {'is' if n == 1 else 'are'} {animals}."
    if order < 0.7:
        return f"{animals.capitalize()} {'stands' if n == 1 else 'stand'} {where}. " \
               f"{parts[0]}. {parts[1]}."
    return f"{parts[1]}. {parts[0]}, next to {animals}, {where}."


def questions(s: dict, rng: random.Random) -> list[tuple[str, str]]:
    i = rng.randint(0, 1)
    who, color, cloth, action = s["people"][i]
    holder = s["people"][s["holder"]][0]
    # yes/no questions ask about what is there or about something else, half and half
    q_animal = s["animal"] if rng.random() < 0.5 else rng.choice(
        [a for a in ANIMALS if a != s["animal"]])
    q_obj = s["held"] if rng.random() < 0.5 else rng.choice([h for h in HELD if h != s["held"]])
    n, animal = s["count"], s["animal"]
    return [
        (f"What color is the {who}'s {cloth}?", color),
        (f"How many {_plural(animal, 2)} are there?", str(n)),
        (f"What is the {who} doing?", action),
        (f"What is the {holder} carrying?", s["held"]),
        ("Where was this picture taken?", s["place"]),
        ("Is it day or night?", s["time"]),
        (f"Is there {_article(q_animal)} {q_animal} in the picture?",
         "yes" if q_animal == animal else "no"),
        (f"Is anyone carrying {_article(q_obj)} {q_obj}?", "yes" if q_obj == s["held"] else "no"),
        (f"What color are the {_plural(animal, 2)}?" if n > 1 else f"What color is the {animal}?",
         s["animal_color"]),
        ("What animal is in the picture?", animal),
    ]


def records(n: int, rng: random.Random) -> list[dict]:
    out = []
    while len(out) < n:
        s = scene(rng)
        text = caption(s, rng)
        for question, answer in rng.sample(questions(s, rng), 2):
            out.append({"instruction": INSTRUCTION,
                        "input": f"Caption: {text}\nQuestion: {question}", "output": answer})
    return out[:n]


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=int, default=800)
    p.add_argument("--eval", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    write(a.out / "train.jsonl", records(a.train, rng))
    write(a.out / "eval.jsonl", records(a.eval, rng))
    print(f"wrote {a.train} train and {a.eval} eval questions to {a.out}")


if __name__ == "__main__":
    main()
