"""Benchmark data and models, all built offline and deterministically.

- ``instructions``: synthetic alpaca rows with log-normal prompt and answer lengths (words of the
  tiny tokenizer's corpus), so random batches of 8 carry ~25-30 % padding, as real SFT data does;
- ``bbc``: the quickstart's BBC News records (title + 2 sentences, the label is the answer);
- ``documents``: raw text for pretraining (BBC article bodies: real prose of very mixed length);
- ``preferences``: synthetic prompt / chosen / rejected rows;
- ``conversations``: multi-turn chats for the preprocessing scenario;
- ``tiny_bench_model``: the benchmark's tiny Llama (hidden 256, 5 layers, vocab 1024: 3.5M
  parameters, the size class of the issue's reference figures), built once into the cache.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ("the of and to in is was for on that with as by at from it an be this are which or "
         "have not has but were they their one all we can you your he she his her will would "
         "there been more what when who how where why answer question instruction input output "
         "response system user assistant hello thanks please yes no good bad great terrible happy "
         "sad movie film review news sport business politics tech entertainment label topic "
         "summary translate classify apple banana cherry dog cat bird red green blue one two "
         "three four five six seven eight nine ten zero plus minus times equals number word "
         "sentence text data model train test learn because therefore reason step first then "
         "finally result true false").split()


def _words(rng: random.Random, mean_log: float, sigma: float, low: int, high: int) -> str:
    n = min(high, max(low, int(rng.lognormvariate(mean_log, sigma))))
    return " ".join(rng.choice(WORDS) for _ in range(n))


def instructions(n: int, seed: int = 0) -> list[dict]:
    """Alpaca rows: prompts ~45 words, answers ~20 words, log-normal (random batches of 8 are
    ~28 % padding, like the issue's reference data)."""
    rng = random.Random(seed)
    return [{"instruction": _words(rng, 3.8, 0.35, 3, 300).capitalize() + "?", "input": "",
             "output": _words(rng, 3.0, 0.4, 2, 150).capitalize() + "."} for _ in range(n)]


def bbc(train: int, evals: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """The quickstart's records: a stratified split, title + 2 sentences, label answers."""
    from lmforge.quickstart import bbc as q

    articles, _ = q.read_articles()
    tr, ev = q.split(articles, evals, seed, train)
    return [q.to_record(a) for a in tr], [q.to_record(a) for a in ev]


def headline_prompts(n: int, seed: int = 0) -> list[dict]:
    """Chat prompts whose answers are long (a news story for a BBC headline): generation time is
    spent decoding, as in chat and batch prediction, not in reading the prompt."""
    from lmforge.quickstart import bbc as q

    articles, _ = q.read_articles()
    rng = random.Random(seed)
    picked = rng.sample(articles, n)
    return [{"instruction": f"Write a short news story with this headline: {a.title}"}
            for a in picked]


def documents(n: int, seed: int = 0) -> list[dict]:
    """Raw text rows ``{"text": ...}``: BBC articles, title + the first 20-150 words of the body
    (real prose of mixed length; some documents are longer than a block and get split)."""
    from lmforge.quickstart import bbc as q

    articles, _ = q.read_articles()
    rng = random.Random(seed)
    rng.shuffle(articles)
    return [{"text": a.title + "\n\n" + " ".join(a.body.split()[:rng.randint(20, 150)])}
            for a in articles[:n]]


def preferences(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        rows.append({"prompt": _words(rng, 3.3, 0.6, 3, 120).capitalize() + "?",
                     "chosen": "Good " + _words(rng, 2.7, 0.6, 2, 60) + ".",
                     "rejected": "Bad " + _words(rng, 2.7, 0.6, 2, 60) + "."})
    return rows


def conversations(n: int, seed: int = 0) -> list[dict]:
    """``messages`` rows: 1-3 exchanges, sometimes a system prompt."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        msgs = [{"role": "system", "content": "You are helpful."}] if rng.random() < 0.3 else []
        for _ in range(rng.randint(1, 3)):
            msgs.append({"role": "user", "content": _words(rng, 2.8, 0.6, 2, 60) + "?"})
            msgs.append({"role": "assistant", "content": _words(rng, 2.8, 0.6, 1, 60) + "."})
        rows.append({"messages": msgs})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def tiny_bench_model() -> Path:
    """The 3.5M-parameter tiny Llama (built once; a lock guards parallel builds)."""
    from lmforge.utils.builtin import cache_root
    from lmforge.utils.tiny import build_tiny

    out = cache_root() / "bench" / "tiny-llama-3m"
    if not (out / "config.json").is_file():
        tmp = out.with_name(out.name + ".tmp")
        build_tiny(tmp, arch="llama", hidden=256, layers=5)
        tmp.rename(out)
    return out
