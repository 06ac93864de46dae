"""Mixing several sources, eval splits, LLaMA-Factory registries and user Python classes."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lmforge.config import validate
from lmforge.data.mixing import counts
from lmforge.data.pipeline import load_examples
from lmforge.errors import ConfigError, DataError
from tests.conftest import write_jsonl


def cfg_for(tmp_path, stage="sft", **data):
    return validate({"stage": stage, "model": {"path": "builtin:tiny-llama"}, "data": data,
                     "train": {"output_dir": str(tmp_path / "out")}})


def source(tmp_path, name, n):
    return str(write_jsonl(tmp_path / f"{name}.jsonl", [
        {"instruction": f"{name} {i}", "output": f"{name}-answer {i}"} for i in range(n)]))


def origin_counts(examples):
    return Counter(e.messages[0]["content"].split()[0] for e in examples)


def test_counts_rules():
    assert counts([10, 30], [1.0, 1.0], [None, None]) == [20, 20]
    assert counts([10, 30, 5], [3.0, 1.0, None], [None, None, None]) == [30, 10, 5]
    assert counts([10, 30], [None, None], [25, None]) == [25, 30]


def test_weights_and_samples_mix_deterministically(tmp_path):
    a, b, c = source(tmp_path, "a", 10), source(tmp_path, "b", 30), source(tmp_path, "c", 4)
    cfg = cfg_for(tmp_path, train=[{"path": a, "weight": 3}, {"path": b, "weight": 1},
                                   {"path": c, "samples": 9}], seed=7)
    first = load_examples(cfg).train
    assert origin_counts(first) == {"a": 30, "b": 10, "c": 9}
    # 'a' is up-sampled by whole copies: every row 3 times
    assert set(Counter(e.messages[0]["content"] for e in first if "a " in e.messages[0]
                       ["content"]).values()) == {3}
    again = load_examples(cfg).train
    assert [e.messages for e in again] == [e.messages for e in first]
    other = load_examples(cfg_for(tmp_path, train=cfg.data.model_dump()["train"], seed=8)).train
    assert [e.messages for e in other] != [e.messages for e in first]


def test_single_plain_source_keeps_file_order(tmp_path):
    a = source(tmp_path, "a", 5)
    got = load_examples(cfg_for(tmp_path, train=a)).train
    assert [e.messages[0]["content"] for e in got] == [f"a {i}" for i in range(5)]


def test_eval_fraction_is_fixed_and_disjoint(tmp_path):
    a, b = source(tmp_path, "a", 20), source(tmp_path, "b", 20)
    cfg = cfg_for(tmp_path, train=[{"path": a, "weight": 2}, b], eval=0.1, seed=3)
    s1, s2 = load_examples(cfg), load_examples(cfg)
    assert len(s1.eval) == 4
    assert [e.messages for e in s1.eval] == [e.messages for e in s2.eval]
    eval_texts = {e.messages[0]["content"] for e in s1.eval}
    assert not eval_texts & {e.messages[0]["content"] for e in s1.train}


def test_eval_files(tmp_path):
    cfg = cfg_for(tmp_path, train=source(tmp_path, "a", 3), eval=[source(tmp_path, "e", 2)])
    assert origin_counts(load_examples(cfg).eval) == {"e": 2}


def test_weight_and_samples_together_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="weight or samples"):
        cfg_for(tmp_path, train=[{"path": "x.jsonl", "weight": 1, "samples": 2}])


def write_registry(tmp_path):
    write_jsonl(tmp_path / "alp.jsonl", [
        {"q": "What?", "ctx": "this", "ans": "that", "sys": "Be exact.",
         "hist": [["hi", "hello"]]}])
    (tmp_path / "share.json").write_text(json.dumps([
        {"conv": [{"role": "user", "text": "u"}, {"role": "bot", "text": "a"}], "sys": "S"}]))
    write_jsonl(tmp_path / "plain_share.jsonl", [
        {"conversations": [{"from": "system", "value": "S0"}, {"from": "human", "value": "u"},
                           {"from": "gpt", "value": "a"}]}])
    write_jsonl(tmp_path / "docs.jsonl", [{"text": "A document."}])
    info = {
        "alp": {"file_name": "alp.jsonl", "columns": {"prompt": "q", "query": "ctx",
                                                      "response": "ans", "system": "sys",
                                                      "history": "hist"}},
        "share": {"file_name": "share.json", "formatting": "sharegpt",
                  "columns": {"messages": "conv", "system": "sys"},
                  "tags": {"role_tag": "role", "content_tag": "text", "user_tag": "user",
                           "assistant_tag": "bot"}},
        "plain_share": {"file_name": "plain_share.jsonl", "formatting": "sharegpt"},
        "docs": {"file_name": "docs.jsonl", "columns": {"prompt": "text"}},
        "hub": {"hf_hub_url": "someone/data"},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(info))
    return str(tmp_path / "dataset_info.json")


def test_llama_factory_registry(tmp_path):
    reg = write_registry(tmp_path)
    got = load_examples(cfg_for(tmp_path, registry=reg,
                                train=["alp", "share", "plain_share"])).train
    assert sorted([(m["role"], m["content"]) for m in e.messages] for e in got) == sorted([
        [("system", "Be exact."), ("user", "hi"), ("assistant", "hello"),
         ("user", "What?\nthis"), ("assistant", "that")],
        [("system", "S"), ("user", "u"), ("assistant", "a")],
        [("system", "S0"), ("user", "u"), ("assistant", "a")]])
    docs = load_examples(cfg_for(tmp_path, stage="pt", registry=reg, train=["docs"],
                                 format="text")).train
    assert docs[0].text == "A document."


def test_registry_errors(tmp_path):
    reg = write_registry(tmp_path)
    with pytest.raises(ConfigError, match="did you mean 'alp'"):
        load_examples(cfg_for(tmp_path, registry=reg, train=["alpp"]))
    with pytest.raises(ConfigError, match="hf_hub_url"):
        load_examples(cfg_for(tmp_path, registry=reg, train=["hub"]))
    with pytest.raises(ConfigError, match="not found"):
        load_examples(cfg_for(tmp_path, registry=str(tmp_path / "none.json"), train=["alp"]))


USER_CLASS = '''
import json

class NewsData:
    def __init__(self, data_dir):
        self.data_dir = data_dir

    def load(self, split):
        if split != "train":
            return None
        with open(f"{self.data_dir}/news.jsonl") as f:
            return [json.loads(line) for line in f]

    def convert(self, record):
        return {"input": "Topic of: " + record["title"], "output": record["label"],
                "origin": {"label": record["label"], "id": record["id"]}}

class NoConvert:
    def load(self, split):
        return []
'''


def test_user_python_class(tmp_path, monkeypatch):
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "my_news.py").write_text(USER_CLASS)
    write_jsonl(tmp_path / "data" / "news.jsonl", [
        {"id": i, "title": f"title {i}", "label": "sport" if i % 2 else "tech"}
        for i in range(10)] + [{"id": 99, "title": "t", "label": ""}])
    cfg = cfg_for(tmp_path, format="python", source="my_news:NewsData",
                  source_args={"data_dir": "data"}, eval=0.2, skip_invalid=True)
    splits = load_examples(cfg)
    assert len(splits.train) == 8 and len(splits.eval) == 2 and splits.skipped["train"] == 1
    ex = splits.eval[0]
    assert ex.origin["label"] == ex.messages[-1]["content"]
    assert ex.messages[0]["content"].startswith("Topic of: title")
    with pytest.raises(DataError, match=r"my_news:NewsData\[train\]:11: field 'output' is empty"):
        load_examples(cfg_for(tmp_path, format="python", source="my_news:NewsData",
                              source_args={"data_dir": "data"}))
    with pytest.raises(ConfigError, match="has no method 'convert'"):
        load_examples(cfg_for(tmp_path, format="python", source="my_news:NoConvert"))
    with pytest.raises(ConfigError, match="has no class 'Nope'.*NewsData"):
        load_examples(cfg_for(tmp_path, format="python", source="my_news:Nope"))
    with pytest.raises(ConfigError, match="module 'missing_mod' not found"):
        load_examples(cfg_for(tmp_path, format="python", source="missing_mod:X"))
