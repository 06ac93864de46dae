"""One encoder: ``encode_conversations`` on a batch gives exactly what the batch of one
(``encode_conversation``) gives for each conversation -- ids, labels, truncated and dropped flags,
or the same error -- on the fuzz corpus of tests/unit/test_fuzz_data.py (hostile contents: special
tokens, Jinja syntax, control characters, 20,000-character strings), mixed with clean chats so the
batch takes the skeleton shortcut and the one-call Rust tokenization, for every template and
length setting of tests/invariants/test_fast_encode.py."""

from __future__ import annotations

import itertools
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lmforge.data.encode import MIN_BATCH, encode_conversation, encode_conversations
from lmforge.data.formats import converter
from lmforge.data.preference import SFT_CONVERSATIONS
from lmforge.data.render import TemplateError, TemplateRenderError
from lmforge.data.sources import unencodable
from lmforge.data.types import Conversation
from lmforge.errors import DataError
from tests.invariants.test_fast_encode import SETTINGS, _conversations, _templates
from tests.unit.test_fuzz_data import HOSTILE, TEXT
from tests.unit.test_fuzz_data import rows as fuzz_rows

CHAT_FORMATS = ("messages", "alpaca", "prompt_response", "preference", "kto")


def _to_conversations(raw: list[dict], fmt: str) -> list[Conversation]:
    convert, out = converter(fmt, {}), []
    for i, row in enumerate(raw):
        if unencodable(row):  # the sources refuse such rows before anything is encoded
            continue
        try:
            ex = convert(row, {}, f"fuzz.jsonl:{i + 1}", None)
        except DataError:
            continue
        conv = ex if isinstance(ex, Conversation) else SFT_CONVERSATIONS[type(ex)](ex)
        if conv is not None:
            out.append(conv)
    return out


def _outcome(result):
    if isinstance(result, Exception):
        return type(result).__name__, str(result)
    return result.input_ids, result.labels, result.truncated, result.dropped


def _one(conv, tokenizer, template, s):
    try:
        return _outcome(encode_conversation(conv, tokenizer, template, s))
    except (TemplateRenderError, TemplateError) as exc:
        return _outcome(exc)


def _same(convs, tokenizer, template, s) -> list[str]:
    """Asserts batch == batch of one for every conversation; how each batch row was rendered."""
    paths: list[str] = []
    batch = encode_conversations(convs, tokenizer, template, s, errors="return", paths=paths)
    assert len(batch) == len(convs) == len(paths)
    for conv, got in zip(convs, batch):
        assert _outcome(got) == _one(conv, tokenizer, template, s), conv
    return paths


# well-formed chats whose every content comes from the fuzz corpus's text strategy (less lone
# surrogates, which the sources refuse before anything is encoded)
VALID_TEXT = TEXT.filter(lambda t: not unencodable(t))
CHATS = st.builds(lambda system, turns: {"messages": ([{"role": "system", "content": system}]
                                                      if system else []) + [
    {"role": r, "content": c} for pair in turns for r, c in zip(("user", "assistant"), pair)]},
    st.one_of(st.none(), VALID_TEXT), st.lists(st.tuples(VALID_TEXT, VALID_TEXT), min_size=1,
                                                  max_size=3))


@given(data=st.data())
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_batch_equals_batch_of_one_on_the_fuzz_corpus(tiny_tokenizer, data):
    fmt = data.draw(st.sampled_from(CHAT_FORMATS), label="format")
    fuzzed = _to_conversations(data.draw(st.lists(fuzz_rows(fmt), max_size=12), label="rows"),
                               fmt)
    fuzzed += _to_conversations(data.draw(st.lists(CHATS, max_size=12), label="chats"),
                                "messages")
    clean = _conversations(MIN_BATCH, seed=data.draw(st.integers(0, 9), label="seed"))
    convs = fuzzed + clean
    random.Random(len(fuzzed)).shuffle(convs)
    templates = _templates(tiny_tokenizer)
    name = data.draw(st.sampled_from(sorted(templates)), label="template")
    s = data.draw(st.sampled_from(SETTINGS), label="settings")
    _same(convs, tiny_tokenizer, templates[name], s)


def test_hostile_contents_every_template_and_setting(tiny_tokenizer):
    """Every pair of hostile strings as a user / assistant turn, in one batch with clean chats."""
    hostile = [h for h in HOSTILE if h.strip() and not unencodable(h)]
    convs = [Conversation(({"role": "user", "content": u}, {"role": "assistant", "content": a}),
                          where=f"pair {i}")
             for i, (u, a) in enumerate(itertools.product(hostile, ["ok", *hostile]))]
    convs += _conversations(3 * MIN_BATCH, seed=5)
    for name, template in _templates(tiny_tokenizer).items():
        for s in (SETTINGS[0], SETTINGS[3], SETTINGS[6]):  # all turns, over-long, both limits
            paths = _same(convs, tiny_tokenizer, template, s)
            assert "skeleton" in paths, name  # the shortcut was exercised, and agreed


def test_turns_dropped_in_a_later_round_equal_the_batch_of_one(tiny_tokenizer):
    """Over-long sources lose whole earlier exchanges: in the batch, in further rounds."""
    convs = _conversations(4 * MIN_BATCH, seed=7)
    for template in _templates(tiny_tokenizer).values():
        for s in SETTINGS[3:]:
            _same(convs, tiny_tokenizer, template, s)


def test_dataset_from_flat_arrays_equals_from_dict():
    import datasets

    from lmforge.data.encoders import to_dataset

    rng = random.Random(0)
    ids = [[rng.randrange(50_000) for _ in range(rng.randint(0, 40))] for _ in range(300)]
    columns = {"input_ids": ids, "labels": [[-100] + x[1:] if x else [] for x in ids],
               "where": [f"f.jsonl:{i}" for i in range(300)]}
    built, reference = to_dataset(columns), datasets.Dataset.from_dict(columns)
    assert built.features == reference.features
    assert built.data.schema.equals(reference.data.schema)
    assert built.to_dict() == reference.to_dict() == columns
