"""ROUGE-1/2/L and BLEU-4 for generated text, Chinese-aware.

ROUGE is computed here (F1 per example, averaged over examples, like the rouge-score package's
aggregate mean) because the common packages tokenize English only: text that contains CJK
characters is segmented into words with jieba (extra ``eval``), other text is split into
lower-cased ``\\w+`` words; punctuation tokens are dropped. BLEU is sacrebleu's corpus BLEU-4
(extra ``eval``) with its ``zh`` tokenizer for Chinese and ``13a`` otherwise, scaled to [0, 1].
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence

from lmforge.errors import require

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_WORD = re.compile(r"\w+")


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def _jieba():
    import logging

    jieba = require("jieba", "eval", "ROUGE on Chinese text")
    jieba.setLogLevel(logging.WARNING)
    return jieba


def _is_punct(token: str) -> bool:
    return all(unicodedata.category(c).startswith(("P", "S", "Z")) for c in token)


def tokenize(text: str) -> list[str]:
    """Words: jieba segments for text with CJK characters, ``\\w+`` words otherwise."""
    text = text.lower()
    if has_cjk(text):
        return [t for t in _jieba().lcut(text) if t.strip() and not _is_punct(t)]
    return _WORD.findall(text)


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _fscore(overlap: float, n_pred: int, n_ref: int) -> float:
    if not overlap or not n_pred or not n_ref:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def rouge_n(pred: list[str], ref: list[str], n: int) -> float:
    pc, rc = _ngrams(pred, n), _ngrams(ref, n)
    overlap = sum((pc & rc).values())
    return _fscore(overlap, sum(pc.values()), sum(rc.values()))


def lcs_length(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: list[str], ref: list[str]) -> float:
    return _fscore(lcs_length(pred, ref), len(pred), len(ref))


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean per-example ROUGE-1, ROUGE-2 and ROUGE-L F1."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for p, r in zip(predictions, references):
        pt, rt = tokenize(p or ""), tokenize(r or "")
        totals["rouge1"] += rouge_n(pt, rt, 1)
        totals["rouge2"] += rouge_n(pt, rt, 2)
        totals["rougeL"] += rouge_l(pt, rt)
    n = max(len(predictions), 1)
    return {k: v / n for k, v in totals.items()}


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (sacrebleu), in [0, 1]."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return 0.0
    sacrebleu = require("sacrebleu", "eval", "the bleu metric")
    chinese = any(has_cjk(t) for t in list(references) + list(predictions))
    result = sacrebleu.corpus_bleu([p or "" for p in predictions], [[r or "" for r in references]],
                                   tokenize="zh" if chinese else "13a")
    return float(result.score) / 100.0
