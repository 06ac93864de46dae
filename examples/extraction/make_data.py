"""Generate the synthetic document-level event-extraction dataset of examples/extraction.

Each document is a short business-news text: one to three event sentences (five event types with
their arguments, several phrasings each, active and passive, arguments in varying order, some
optional) mixed with distractor sentences that name the same kinds of entities without an event
(share prices, analyst quotes, denied rumours, plans that did not happen). About one document in
ten has no event at all. The answer is the events as a JSON list in document order:

    [{"event": "acquisition", "acquirer": "Norvell Systems", "target": "Quillby Foods",
      "price": "$2.4 billion", "date": "14 March"}]

Deterministic (seeded): the same arguments write the same files.
Usage: python examples/extraction/make_data.py [--train 480] [--eval 80] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

INSTRUCTION = (
    "Extract the events of the text as a JSON list. Event types and arguments: acquisition "
    "(acquirer, target, price, date), appointment (person, organization, position, date), layoff "
    "(organization, count, location, date), funding (organization, investor, amount, date), "
    "recall (organization, product, count, date). Rumours and plans are not events.")

ROLES = {
    "acquisition": ("acquirer", "target", "price", "date"),
    "appointment": ("person", "organization", "position", "date"),
    "layoff": ("organization", "count", "location", "date"),
    "funding": ("organization", "investor", "amount", "date"),
    "recall": ("organization", "product", "count", "date"),
}

_HEADS = ["Norvell", "Quillby", "Brightwater", "Castellan", "Dunmore", "Everly", "Fairhaven",
          "Greystone", "Halvorsen", "Ironbridge", "Juniper", "Kestrel", "Larkspur", "Marlowe",
          "Northgate", "Oakhurst", "Pemberton", "Redcliffe", "Silverline", "Thornbury", "Upland",
          "Vantor", "Westmere", "Yardley", "Zephyr", "Ashcombe", "Bexley", "Corvid", "Delmont",
          "Elmstead"]
_TAILS = ["Systems", "Foods", "Energy", "Motors", "Pharma", "Logistics", "Bank", "Robotics",
          "Textiles", "Media", "Software", "Airlines", "Chemicals", "Retail", "Labs"]
_FIRST = ["Maria", "James", "Aisha", "Tomas", "Ingrid", "Kenji", "Priya", "Daniel", "Sofia",
          "Omar", "Claire", "Luca", "Hannah", "Mateo", "Yuki", "Grace", "Pavel", "Nadia"]
_LAST = ["Okafor", "Lindqvist", "Moreau", "Castillo", "Brennan", "Sato", "Haddad", "Novak",
         "Fischer", "Reyes", "Abernathy", "Kowalski", "Delgado", "Whitfield", "Iyer", "Larsen"]
_POSITIONS = ["chief executive", "chief financial officer", "chairman", "head of research",
              "chief operating officer", "president", "general counsel", "chief technology officer"]
_INVESTORS = ["Harbor Point Capital", "Bluestem Ventures", "Granite Peak Partners",
              "Seaford Growth Fund", "Meridian Holdings", "Tallow Creek Capital",
              "Ridgeway Investors", "Copperfield Partners"]
_CITIES = ["Leeds", "Rotterdam", "Lyon", "Osaka", "Denver", "Porto", "Gdansk", "Adelaide",
           "Tampere", "Bilbao", "Winnipeg", "Dundee"]
_PRODUCTS = ["electric scooters", "baby monitors", "air fryers", "car seats", "laptop chargers",
             "space heaters", "blenders", "smoke alarms", "bicycle helmets", "coffee machines"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]

# one event sentence per template: {date_on} is " on <date>" or nothing (the date is optional),
# {date_On} opens the sentence with the date
TEMPLATES = {
    "acquisition": [
        "{acquirer} has agreed to buy {target} for {price}{date_on}.",
        "{target} was acquired by {acquirer}{date_on} in a deal worth {price}.",
        "{date_On}{acquirer} completed its {price} takeover of {target}.",
        "In a {price} deal, {acquirer} bought rival {target}{date_on}.",
        "{acquirer} said it had acquired {target}{date_on}.",
        "{acquirer} snapped up {target}{date_on}, paying {price}.",
    ],
    "appointment": [
        "{organization} named {person} as its new {position}{date_on}.",
        "{person} was appointed {position} of {organization}{date_on}.",
        "{date_On}{organization} announced that {person} will become {position}.",
        "{person} has joined {organization} as {position}.",
        "The board of {organization} promoted {person} to {position}{date_on}.",
    ],
    "layoff": [
        "{organization} will cut {count} jobs at its {location} plant{date_on}.",
        "{date_On}{organization} laid off {count} workers in {location}.",
        "About {count} employees of {organization} lost their jobs{date_on}.",
        "{organization} is shedding {count} staff, most of them in {location}.",
        "{organization} announced {count} redundancies{date_on}.",
    ],
    "funding": [
        "{organization} raised {amount} from {investor}{date_on}.",
        "{investor} led a {amount} funding round in {organization}{date_on}.",
        "{date_On}{organization} secured {amount} in new funding led by {investor}.",
        "{organization} closed a {amount} round{date_on}.",
        "{investor} invested {amount} in {organization}.",
    ],
    "recall": [
        "{organization} recalled {count} {product}{date_on} over a fire risk.",
        "{date_On}{organization} pulled {count} of its {product} from shops.",
        "About {count} {product} made by {organization} are being recalled.",
        "{organization} issued a recall of its {product}{date_on}.",
        "Regulators forced {organization} to recall {count} {product}{date_on}.",
    ],
}

DISTRACTORS = [
    "Shares of {org} rose {pct} percent in early trading.",
    "Shares of {org} fell {pct} percent after the announcement.",
    "{org} denied rumours that it would buy {org2}.",
    "Analysts at {investor} expect {org} to report higher profits this year.",
    "{person}, a spokesperson for {org}, declined to comment.",
    "{org} is reportedly considering an offer for {org2}, according to people familiar with it.",
    "{org} said last year that it had no plans to cut jobs in {city}.",
    "The company opened a new office in {city} in {month}.",
    "{org} has about {n} employees worldwide.",
    "Talks between {org} and {org2} collapsed without a deal.",
    "{person} previously worked at {org2} for a decade.",
    "{org} plans to launch new {product} next year.",
    "Trading volumes in {city} were thin ahead of the holiday.",
    "{investor} manages assets worth {money}.",
]


def _company(rng: random.Random, used: set) -> str:
    while True:
        name = f"{rng.choice(_HEADS)} {rng.choice(_TAILS)}"
        if name not in used:
            used.add(name)
            return name


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"


def _money(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"${rng.randint(2, 95) / 10:.1f} billion".replace(".0 ", " ")
    return f"${rng.choice([15, 40, 75, 120, 250, 310, 480, 650, 800])} million"


def _count(rng: random.Random) -> str:
    n = rng.choice([120, 250, 400, 600, 900, 1200, 1500, 2000, 3500, 5000, 12000, 40000])
    return f"{n:,}"


def _date(rng: random.Random) -> str:
    month = rng.choice(_MONTHS)
    return f"{rng.randint(1, 28)} {month}" if rng.random() < 0.7 else month


def _arguments(kind: str, rng: random.Random, used: set) -> dict:
    a = {"acquisition": lambda: {"acquirer": _company(rng, used), "target": _company(rng, used),
                                 "price": _money(rng)},
         "appointment": lambda: {"person": _person(rng), "organization": _company(rng, used),
                                 "position": rng.choice(_POSITIONS)},
         "layoff": lambda: {"organization": _company(rng, used), "count": _count(rng),
                            "location": rng.choice(_CITIES)},
         "funding": lambda: {"organization": _company(rng, used),
                             "investor": rng.choice(_INVESTORS), "amount": _money(rng)},
         "recall": lambda: {"organization": _company(rng, used), "product": rng.choice(_PRODUCTS),
                            "count": _count(rng)}}[kind]()
    a["date"] = _date(rng)
    return a


def event_sentence(kind: str, rng: random.Random, used: set) -> tuple[str, dict]:
    """One event sentence and the event (only the arguments the sentence mentions)."""
    template = rng.choice(TEMPLATES[kind])
    args = _arguments(kind, rng, used)
    with_date = "{date_On}" in template or ("{date_on}" in template and rng.random() < 0.6)
    text = template.format(**args, date_on=f" on {args['date']}" if with_date else "",
                           date_On=f"On {args['date']}, ")
    event = {"event": kind}
    for role in ROLES[kind]:  # a fixed role order in the answer
        if ("{" + role + "}" in template) or (role == "date" and with_date):
            event[role] = args[role]
    return text, event


def distractor(rng: random.Random, used: set) -> str:
    return rng.choice(DISTRACTORS).format(
        org=_company(rng, used), org2=_company(rng, used), person=_person(rng),
        investor=rng.choice(_INVESTORS), city=rng.choice(_CITIES), month=rng.choice(_MONTHS),
        pct=rng.randint(1, 15), n=_count(rng), product=rng.choice(_PRODUCTS), money=_money(rng))


def document(rng: random.Random) -> tuple[str, list[dict]]:
    used: set = set()
    n_events = rng.choices([0, 1, 2, 3], weights=[1, 5, 3, 1])[0]
    parts = [("event", event_sentence(rng.choice(list(ROLES)), rng, used))
             for _ in range(n_events)]
    parts += [("distractor", (distractor(rng, used), None)) for _ in range(rng.randint(1, 2))]
    rng.shuffle(parts)
    text = " ".join(p[1][0] for p in parts)
    events = [p[1][1] for p in parts if p[0] == "event"]
    return text, events


def answer(events: list[dict]) -> str:
    return json.dumps(events, ensure_ascii=False)


def records(n: int, rng: random.Random) -> list[dict]:
    out = []
    for _ in range(n):
        text, events = document(rng)
        out.append({"instruction": INSTRUCTION, "input": text, "output": answer(events)})
    return out


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=int, default=480)
    p.add_argument("--eval", type=int, default=80)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    write(a.out / "train.jsonl", records(a.train, rng))
    write(a.out / "eval.jsonl", records(a.eval, rng))
    print(f"wrote {a.train} train and {a.eval} eval documents to {a.out}")


if __name__ == "__main__":
    main()
