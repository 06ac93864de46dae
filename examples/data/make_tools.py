"""Generate the toy tool-calling data of examples/tiny/tools.yaml (deterministic; run to refresh).

Each row is an OpenAI-style `messages` conversation with a `tools` column (JSON schemas): a user
request, then the assistant's answer as a tool call with the right arguments. Three tools:
`get_weather(city)`, `calculate(expression)`, `convert_currency(amount, currency)`. The held-out
file (tools_eval.jsonl) phrases the requests differently from the training file, so the tuned
model must recognise the request, not a memorised sentence. Requests are rendered with the
model's tool-calling template (`chatml_tools`); examples/tiny/tool_calls.py measures how many
held-out answers are well-formed tool calls.
"""

import argparse
import json
import random
from pathlib import Path

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "calculate", "description": "Arithmetic",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "convert_currency", "description": "Convert euros",
        "parameters": {"type": "object", "properties": {"amount": {"type": "number"},
                                                        "currency": {"type": "string"}}}}},
]
CITIES = ["Paris", "Berlin", "Rome", "Madrid", "Oslo", "Lima", "Tokyo", "Cairo", "Delhi",
          "Boston", "Sydney", "Dublin"]
CURRENCIES = ["USD", "GBP", "JPY", "CHF"]
OPS = {"plus": "+", "minus": "-", "times": "*"}

TRAIN = {
    "get_weather": ["What is the weather in {city}?", "Weather for {city} please.",
                    "Is it raining in {city}?", "Tell me the weather in {city}."],
    "calculate": ["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "Calculate {a} {op} {b}."],
    "convert_currency": ["Convert {amount} euros to {cur}.", "How much is {amount} EUR in {cur}?",
                         "{amount} euros in {cur}?"],
}
HELD_OUT = {
    "get_weather": ["I am flying to {city} tomorrow, how is the weather there?",
                    "Could you check the current weather for {city}?"],
    "calculate": ["Quick maths: {a} {op} {b} equals what?", "Please work out {a} {op} {b} for me."],
    "convert_currency": ["I have {amount} euros, what is that in {cur}?",
                         "Exchange {amount} EUR into {cur} for me."],
}


def request(rng: random.Random, phrasings: dict) -> dict:
    name = rng.choice(sorted(phrasings))
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    word = rng.choice(sorted(OPS))
    values = {"city": rng.choice(CITIES), "a": a, "b": b, "op": word,
              "amount": rng.choice([5, 10, 20, 50, 100, 250]), "cur": rng.choice(CURRENCIES)}
    args = {"get_weather": {"city": values["city"]},
            "calculate": {"expression": f"{a} {OPS[word]} {b}"},
            "convert_currency": {"amount": values["amount"], "currency": values["cur"]}}[name]
    text = rng.choice(phrasings[name]).format(**values)
    return {"messages": [
        {"role": "user", "content": text},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}],
        "tools": TOOLS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write tools_train.jsonl and tools_eval.jsonl")
    parser.add_argument("--out", default=str(Path(__file__).parent))
    here = Path(parser.parse_args(argv).out)
    rng = random.Random(0)
    for name, phrasings, n in (("tools_train.jsonl", TRAIN, 400),
                               ("tools_eval.jsonl", HELD_OUT, 60)):
        with open(here / name, "w", encoding="utf-8") as f:
            for _ in range(n):
                f.write(json.dumps(request(rng, phrasings)) + "\n")


if __name__ == "__main__":
    main()
