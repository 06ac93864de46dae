"""A ``data.format: python`` class with train / eval / test splits: training reads train and eval,
``lmforge eval RUN`` (``eval_samples``) reads test, falling back to eval, then to the fraction
``data.eval``; a class with no held-out split is an error that says what to add."""

from __future__ import annotations

import sys

import pytest

from lmforge.config import validate
from lmforge.data.pipeline import load_examples
from lmforge.errors import ConfigError
from lmforge.eval.inputs import eval_samples

CLASS = '''
SPLITS = {"train": [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")],
          "eval": [("f", "6")], "test": [("g", "7"), ("h", "8")]}

class ThreeSplits:
    def __init__(self, without=()):
        self.without = set(without)

    def load(self, split):
        if split in self.without:
            raise NotImplementedError
        return SPLITS[split]

    def convert(self, record):
        return {"input": f"Number of {record[0]}?", "output": record[1],
                "origin": {"key": record[0]}}
'''


@pytest.fixture
def cfg_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "three_splits.py").write_text(CLASS)

    def make(without=(), **data):
        return validate({"model": {"path": "builtin:tiny-llama"},
                         "data": {"format": "python", "source": "three_splits:ThreeSplits",
                                  "source_args": {"without": list(without)}, **data},
                         "train": {"output_dir": str(tmp_path / "out")}})
    yield make
    sys.modules.pop("three_splits", None)  # the next test's module lives in another directory


def keys(samples):
    return [s.origin["key"] for s in samples]


def test_training_reads_train_and_eval_evaluation_reads_test(cfg_for):
    cfg = cfg_for()
    splits = load_examples(cfg)
    assert [e.origin["key"] for e in splits.train] == list("abcde")
    assert [e.origin["key"] for e in splits.eval] == ["f"]  # test is never seen in training
    assert keys(eval_samples(cfg)) == ["g", "h"]


def test_falls_back_to_eval_then_to_the_fraction(cfg_for):
    assert keys(eval_samples(cfg_for(without=["test"]))) == ["f"]
    fraction = eval_samples(cfg_for(without=["test", "eval"], eval=0.4))
    assert len(fraction) == 2 and set(keys(fraction)) <= set("abcde")


def test_no_held_out_split_says_what_to_add(cfg_for):
    with pytest.raises(ConfigError, match="load\\('test'\\) and load\\('eval'\\) gave no ") as err:
        eval_samples(cfg_for(without=["test", "eval"]))
    assert "load('test')" in err.value.hint and "--data-file" in err.value.hint
