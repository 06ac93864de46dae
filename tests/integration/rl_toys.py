"""Toy tasks and config builders shared by the preference/RL stage tests (not a test module).

- Preference toy: chosen = "<w1> good <w2>", rejected = "<w1> <w3> <w2>" (the same words with a
  random one where chosen has "good"): a random model has no systematic preference, a trained
  reward model or policy learns "good is better".
- RL toy: reward = share of digit characters in the completion (``digit_share``); the random tiny
  model's completions already contain some digits, so the signal is dense from the first step.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from tests.conftest import REPO, write_jsonl

WORDS = ("apple banana cherry dog cat bird red green blue one two three four five six seven "
         "eight nine happy sad movie film news sport").split()

REWARDS_PY = '''
def digit_share(completions, **columns):
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


CALLS = []


def recording(completions, prompts, answer, **columns):
    CALLS.append({"prompts": list(prompts), "answer": list(answer), "keys": sorted(columns)})
    return [float(str(a) in c) for c, a in zip(completions, answer)]
'''


def preference_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    others = [w for w in WORDS if w != "good"]
    rows = []
    for _ in range(n):
        w1, w2, w3 = rng.sample(others, 3)
        rows.append({"prompt": f"Say something about {' '.join(rng.sample(others, 2))}.",
                     "chosen": f"{w1} good {w2}", "rejected": f"{w1} {w3} {w2}"})
    return rows


def prompt_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"prompt": f"Write about {' '.join(rng.sample(WORDS, 2))}.",
             "answer": str(rng.randrange(10))} for _ in range(n)]


def write_rewards(tmp_path: Path) -> Path:
    path = tmp_path / "toy_rewards.py"
    path.write_text(REWARDS_PY)
    return path


def example(stage: str) -> dict:
    """The examples/tiny/<stage>.yaml config as a dict (tests start from the shipped examples)."""
    return yaml.safe_load((REPO / "examples" / "tiny" / f"{stage}.yaml").read_text())


def config(base: dict, tmp_path: Path, **sections):
    """``base`` with each given section updated (train.output_dir into tmp_path), validated."""
    from lmforge.config import validate

    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    data.setdefault("train", {})["output_dir"] = str(tmp_path / "out")
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return validate(data)


def preference_data(tmp_path: Path, n_train: int = 48, n_eval: int = 16) -> dict:
    train = write_jsonl(tmp_path / "pref_train.jsonl", preference_rows(n_train, seed=1))
    evals = write_jsonl(tmp_path / "pref_eval.jsonl", preference_rows(n_eval, seed=2))
    return {"train": str(train), "eval": str(evals), "format": "preference", "max_length": 64}


def prompt_data(tmp_path: Path, n: int = 64) -> dict:
    train = write_jsonl(tmp_path / "prompts.jsonl", prompt_rows(n, seed=3))
    return {"train": str(train), "eval": None, "format": "prompt", "max_length": 64}


def first_last(history: list[dict], key: str, k: int = 3) -> tuple[float, float]:
    values = [h[key] for h in history if key in h and "step" in h and h["step"] > 0]
    assert len(values) >= 2 * k, values
    return sum(values[:k]) / k, sum(values[-k:]) / k
