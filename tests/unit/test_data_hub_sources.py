"""Sources beyond plain files: saved DatasetDict splits (``dir:split``) and Hub dataset ids that
are already in the local Hugging Face cache (``org/name``, ``org/name:split``), read offline; an id
in no cache is an error that says how to fetch it."""

from __future__ import annotations

import json

import pytest

from lmforge.config import validate
from lmforge.data import hub
from lmforge.data.cache import source_fingerprint
from lmforge.data.pipeline import load_examples
from lmforge.data.sources import iter_rows
from lmforge.errors import DataError

TRAIN = [{"instruction": "Say hi", "output": "hello"}, {"instruction": "Add 1 1", "output": "2"}]
TEST = [{"instruction": "Say bye", "output": "bye"}]


def cfg_for(tmp_path, **data):
    return validate({"model": {"path": "builtin:tiny-llama"}, "data": data,
                     "train": {"output_dir": str(tmp_path / "out")}})


def outputs(examples):
    return [e.messages[-1]["content"] for e in examples]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hub file cache and datasets cache under tmp_path."""
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    return tmp_path


def _snapshot(root, repo, files: dict):
    """Files laid out as huggingface_hub caches a dataset repository."""
    base = root / "hub" / f"datasets--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text("0" * 40)
    for name, rows in files.items():
        f = base / "snapshots" / ("0" * 40) / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_saved_datasetdict_split(tmp_path):
    import datasets

    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(TRAIN),
                          "test": datasets.Dataset.from_list(TEST)}).save_to_disk(str(saved))
    splits = load_examples(cfg_for(tmp_path, train=str(saved), eval=f"{saved}:test"))
    assert outputs(splits.train) == ["hello", "2"] and outputs(splits.eval) == ["bye"]
    assert source_fingerprint(f"{saved}:test")  # the cache key sees the files
    with pytest.raises(DataError, match="no split 'dev' \\(splits: train, test\\)"):
        list(iter_rows(f"{saved}:dev"))


def test_hub_id_in_the_file_cache(hub_cache):
    _snapshot(hub_cache, "acme/toy", {"data/train-00000-of-00001.jsonl": TRAIN,
                                      "data/test-00000-of-00001.jsonl": TEST,
                                      "README.md": []})
    splits = load_examples(cfg_for(hub_cache, train="acme/toy", eval="acme/toy:test"))
    assert outputs(splits.train) == ["hello", "2"] and outputs(splits.eval) == ["bye"]
    where = splits.train[0].where
    assert "datasets--acme--toy" in where and where.endswith("train-00000-of-00001.jsonl:1")
    assert hub.source_exists("acme/toy") and source_fingerprint("acme/toy")
    with pytest.raises(DataError, match="no split 'validation'"):
        list(iter_rows("acme/toy:validation"))


def test_hub_id_in_the_datasets_arrow_cache(hub_cache):
    import datasets

    tmp = hub_cache / "tmp_saved"
    datasets.Dataset.from_list(TRAIN).save_to_disk(str(tmp))
    target = hub_cache / "datasets" / "acme___toy_set" / "default" / "0.0.0" / "abc"
    target.mkdir(parents=True)
    arrow = next(tmp.glob("*.arrow"))
    arrow.rename(target / "toy_set-train.arrow")
    got = load_examples(cfg_for(hub_cache, train="acme/ToySet")).train
    assert outputs(got) == ["hello", "2"]


def test_uncached_hub_id_says_how_to_fetch_it(hub_cache):
    with pytest.raises(DataError, match="not in the local Hugging Face cache") as err:
        load_examples(cfg_for(hub_cache, train="acme/missing"))
    assert "load_dataset('acme/missing')" in err.value.hint
    assert not hub.source_exists("acme/missing")
    with pytest.raises(DataError, match="not found"):  # a path that is no id: as before
        list(iter_rows(str(hub_cache / "nope.jsonl")))


def test_local_path_wins_over_an_id(hub_cache, monkeypatch):
    monkeypatch.chdir(hub_cache)
    (hub_cache / "acme").mkdir()
    (hub_cache / "acme" / "toy").write_text("")
    assert hub.parse_id("acme/toy") is None
    assert hub.parse_id("acme/other:test") == ("acme/other", "test")
