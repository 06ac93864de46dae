"""Convert the English chatterbot-corpus conversations into messages JSONL for examples/chat.

chatterbot-corpus (BSD-3-Clause, on PyPI; ``pip install --no-deps chatterbot-corpus``) ships short
conversations as YAML files, ``<package>/data/english/<topic>.yml``, each a list of utterances
that alternate between two speakers. The package's module is not imported (its directory is found
with importlib.util.find_spec): only the YAML files are read. The first speaker is the user; a
trailing user turn without an answer is dropped, and repeated conversations are dropped (counted):
the corpus repeats some many times over. Most corpus conversations are a single exchange,
so the exchanges of one topic file are joined into sessions of up to three (longer corpus
conversations stay as they are): each row is ``{"messages": [{"role": "user", ...},
{"role": "assistant", ...}, ...], "topic": ...}`` and every assistant turn of it is trained
(``data.train_on: all_assistant``).

The split is deterministic and made before joining: an exchange whose first user turn hashes into
the last tenth goes to eval, so the same question never sits in both files.
Usage: python examples/chat/make_data.py [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

INSTALL = "pip install --no-deps chatterbot-corpus"


def corpus_dir() -> Path:
    spec = importlib.util.find_spec("chatterbot_corpus")  # locate, do not import
    for where in (spec.submodule_search_locations or []) if spec else []:
        path = Path(where) / "data" / "english"
        if path.is_dir():
            return path
    sys.exit(f"chatterbot-corpus is not installed: {INSTALL}")


def _text(value) -> str:
    # a few utterances are YAML numbers or booleans ("- - 42"): keep them as text
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip()


def conversations(path: Path) -> list[dict]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    rows = []
    for turns in data.get("conversations") or []:
        texts = [_text(t) for t in turns or [] if t is not None and _text(t)]
        if len(texts) % 2:
            texts = texts[:-1]  # a last question without an answer teaches nothing
        if not texts:
            continue
        messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t}
                    for i, t in enumerate(texts)]
        rows.append({"messages": messages, "topic": path.stem})
    return rows


def dedupe(rows: list[dict]) -> tuple[list[dict], int]:
    """Drop repeated conversations (the same turns, case-insensitively), keeping the first.
    The corpus's tech_support file is 1,050 exchanges made of 10 distinct ones: trained as they
    are, those ten answers would be a third of all training tokens."""
    seen, out = set(), []
    for r in rows:
        key = tuple(m["content"].casefold() for m in r["messages"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out, len(rows) - len(out)


def is_eval(row: dict) -> bool:
    first = row["messages"][0]["content"].casefold()
    return int(hashlib.sha256(first.encode()).hexdigest(), 16) % 10 == 9


def sessions(rows: list[dict], size: int = 3) -> list[dict]:
    """Join the single exchanges of each topic into sessions of up to ``size`` exchanges.

    The corpus lists several answers to one question one after the other ("Tell me a joke" many
    times), so each exchange goes into the first open session of its topic that does not ask its
    question yet: a session asks different questions, not the same one three times."""
    out = [r for r in rows if len(r["messages"]) > 2]
    open_sessions: dict[str, list[list[dict]]] = {}
    for r in rows:
        if len(r["messages"]) != 2:
            continue
        question = r["messages"][0]["content"].casefold()
        group = open_sessions.setdefault(r["topic"], [])
        target = next((g for g in group if len(g) < size
                       and all(x["messages"][0]["content"].casefold() != question for x in g)),
                      None)
        if target is None:
            target = []
            group.append(target)
        target.append(r)
    for topic, group in open_sessions.items():
        out += [{"messages": [m for r in g for m in r["messages"]], "topic": topic} for g in group]
    return out


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/chat-data"))
    a = p.parse_args(argv)
    rows = [r for f in sorted(corpus_dir().glob("*.yml")) for r in conversations(f)]
    rows, repeated = dedupe(rows)
    train = sessions([r for r in rows if not is_eval(r)])
    evals = sessions([r for r in rows if is_eval(r)])
    write(a.out / "train.jsonl", train)
    write(a.out / "eval.jsonl", evals)
    turns = sum(len(r["messages"]) // 2 for r in rows)
    print(f"wrote {len(train)} train and {len(evals)} eval conversations ({turns} exchanges) "
          f"to {a.out}; {repeated} repeated corpus conversations dropped")


if __name__ == "__main__":
    main()
