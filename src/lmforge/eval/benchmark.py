"""Multiple-choice benchmarks from local files in their published layouts: MMLU, C-Eval, CMMLU.

Layouts (the user points ``--data-dir`` at the unpacked release; nothing is downloaded):

- MMLU (hendrycks/test ``data.tar``): ``{dev,val,test}/<subject>_<split>.csv``, no header, columns
  question, A, B, C, D, answer. Default split ``test``; few-shot examples from ``dev``.
- C-Eval (``ceval-exam.zip``): ``{dev,val,test}/<subject>_<split>.csv`` with header
  ``id,question,A,B,C,D,answer[,explanation]``. The public test split has no answers, so the
  default split is ``val``; few-shot examples from ``dev``.
- CMMLU: ``{dev,test}/<subject>.csv`` with header ``,Question,A,B,C,D,Answer`` (an unnamed index
  column first). Default split ``test``; few-shot examples from ``dev``.

A question is scored by the log-likelihood of each option letter as the answer's continuation
(the prediction is the most likely letter), zero- or few-shot, either on raw text (base models) or
as a chat rendered with the model's template (few-shot examples as earlier turns). Accuracy is
reported per subject and overall (pooled over questions; the subject mean is ``accuracy_macro``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from lmforge.errors import ConfigError, DataError

LETTERS = ("A", "B", "C", "D")


@dataclass
class Question:
    subject: str
    question: str
    options: tuple[str, ...]
    answer: str | None
    where: str = ""


@dataclass(frozen=True)
class Layout:
    split: str  # default evaluation split
    chinese: bool
    header: bool  # the CSV files start with a header row
    split_suffix: bool  # file names end in _<split>.csv

    def _suffix(self, split: str) -> str:
        return f"_{split}.csv" if self.split_suffix else ".csv"

    def file(self, root: Path, subject: str, split: str) -> Path:
        return root / split / f"{subject}{self._suffix(split)}"

    def subjects(self, root: Path, split: str) -> list[str]:
        suffix = self._suffix(split)
        return sorted(p.name[: -len(suffix)] for p in (root / split).glob(f"*{suffix}"))


LAYOUTS = {"mmlu": Layout("test", False, False, True), "ceval": Layout("val", True, True, True),
           "cmmlu": Layout("test", True, True, False)}


def _root(data_dir: Path, split: str) -> Path:
    for cand in (data_dir, data_dir / "data"):
        if (cand / split).is_dir():
            return cand
    raise ConfigError(f"--data-dir: {data_dir} has no '{split}/' folder",
                      "point it at the benchmark's published layout: dev/ and test/ (C-Eval: "
                      "val/) with one CSV per subject")


def _row(values: dict | list, layout: Layout, subject: str, where: str) -> Question:
    if isinstance(values, list):
        if len(values) < 6:
            raise DataError(f"expected 6 columns (question, A, B, C, D, answer), got "
                            f"{len(values)}", where)
        q, opts, ans = values[0], tuple(values[1:5]), values[5]
    else:
        low = {(k or "").strip().lower(): v for k, v in values.items()}
        missing = [k for k in ("question", "a", "b", "c", "d") if k not in low]
        if missing:
            raise DataError(f"missing column(s) {', '.join(missing)}", where)
        q, opts, ans = low["question"], tuple(low[k] for k in "abcd"), low.get("answer")
    ans = (ans or "").strip().upper() or None
    if ans is not None and ans not in LETTERS:
        raise DataError(f"answer must be one of A-D, got {ans!r}", where, field="answer")
    return Question(subject, q.strip(), tuple(o.strip() for o in opts), ans, where)


def read_subject(path: Path, layout: Layout, subject: str) -> list[Question]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f) if layout.header else csv.reader(f)
        first = 2 if layout.header else 1
        return [_row(row, layout, subject, f"{path}:{i}") for i, row in enumerate(reader, first)
                if row]


def load(name: str, data_dir: str | Path, split: str | None = None,
         subjects: Sequence[str] | None = None) -> dict[str, tuple[list, list]]:
    """``{subject: (few-shot dev questions, questions to evaluate)}``."""
    if name not in LAYOUTS:
        raise ConfigError(f"--benchmark: unknown benchmark '{name}'",
                          f"choose one of {', '.join(LAYOUTS)}")
    layout = LAYOUTS[name]
    split = split or layout.split
    root = _root(Path(data_dir), split)
    found = layout.subjects(root, split)
    chosen = list(subjects) if subjects else found
    unknown = sorted(set(chosen) - set(found))
    if unknown or not chosen:
        raise ConfigError(f"--subjects: not found in {root / split}: "
                          f"{', '.join(unknown) or '(no subject files)'}",
                          f"available: {', '.join(found) or 'none'}")
    out = {}
    for subject in chosen:
        dev_file = layout.file(root, subject, "dev")
        dev = read_subject(dev_file, layout, subject) if dev_file.is_file() else []
        items = read_subject(layout.file(root, subject, split), layout, subject)
        if any(q.answer is None for q in items):
            raise DataError(f"questions without an answer in {layout.file(root, subject, split)}"
                            " (the public C-Eval test split has none)", hint="use --split val")
        out[subject] = (dev, items)
    return out


def _describe(q: Question, chinese: bool) -> str:
    lines = [q.question] + [f"{k}. {v}" for k, v in zip(LETTERS, q.options)]
    return "\n".join(lines) + ("\n答案：" if chinese else "\nAnswer:")


def _header(subject: str, chinese: bool) -> str:
    topic = subject.replace("_", " ")
    if chinese:
        return f"以下是中国关于{topic}考试的单项选择题，请选出其中的正确答案。\n\n"
    return f"The following are multiple choice questions (with answers) about {topic}.\n\n"


def build_prompt(q: Question, shots: Sequence[Question], chinese: bool, chat: bool):
    """Raw text ending in "Answer:" (continuations " A".."D"), or a chat (continuations "A")."""
    head = _header(q.subject, chinese)
    if not chat:
        sep = "" if chinese else " "
        body = "".join(f"{_describe(s, chinese)}{sep}{s.answer}\n\n" for s in shots)
        return head + body + _describe(q, chinese)
    msgs: list[dict] = []
    for s in shots:
        msgs += [{"role": "user", "content": (head if not msgs else "") + _describe(s, chinese)},
                 {"role": "assistant", "content": s.answer}]
    msgs.append({"role": "user", "content": (head if not msgs else "") + _describe(q, chinese)})
    return msgs


def continuations(chinese: bool, chat: bool) -> list[str]:
    return list(LETTERS) if chat or chinese else [" " + x for x in LETTERS]


Scorer = Callable[[Sequence, Sequence[str]], list[list[float]]]


def engine_scorer(engine) -> Scorer:
    """Log-likelihood of each continuation after each prompt (a string or a chat)."""
    from lmforge.eval.runner import split_ids

    def score(prompts, conts):
        pairs = []
        for p in prompts:
            text = engine.render(p) if isinstance(p, list) else p
            pairs += [split_ids(engine.tokenizer, text, c) for c in conts]
        flat = [sum(x) for x in engine.loglikelihood(pairs)]
        return [flat[i:i + len(conts)] for i in range(0, len(flat), len(conts))]

    return score


def run(data: dict[str, tuple[list, list]], scorer: Scorer, shots: int = 0, chinese: bool = False,
        chat: bool = False, batch: int = 8, progress=None) -> tuple[dict, list[dict]]:
    """(results, one record per question): accuracy per subject, overall and macro."""
    conts = continuations(chinese, chat)
    subjects, records = {}, []
    for subject, (dev, items) in data.items():
        correct = 0
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            prompts = [build_prompt(q, dev[:shots], chinese, chat) for q in chunk]
            for q, scores in zip(chunk, scorer(prompts, conts)):
                pred = LETTERS[max(range(len(scores)), key=scores.__getitem__)]
                correct += pred == q.answer
                records.append({"subject": subject, "question": q.question, "answer": q.answer,
                                "prediction": pred, "scores": dict(zip(LETTERS, scores)),
                                "where": q.where})
            if progress is not None:
                progress(len(chunk))
        subjects[subject] = {"accuracy": correct / len(items) if items else 0.0,
                             "correct": correct, "total": len(items)}
    total = sum(s["total"] for s in subjects.values())
    right = sum(s["correct"] for s in subjects.values())
    results = {"accuracy": right / total if total else 0.0,
               "accuracy_macro": sum(s["accuracy"] for s in subjects.values()) / max(
                   len(subjects), 1),
               "correct": right, "total": total, "subjects": subjects}
    return results, records
