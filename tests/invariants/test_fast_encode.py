"""Batch encoding (``encode.encode_conversations`` on a batch, whose skeleton shortcut renders
most rows) gives exactly the rows of the batch of one (``encode.encode_conversation``): ids,
labels, truncated and dropped flags, for every built-in template, a template with
{% generation %} markers, one without (derived spans), every train_on and truncation setting,
and contents that templates trim, escape or branch on. Templates that transform contents are
detected and left to the per-example path, and a disagreement found by the sampled verification
switches the whole batch back to it."""

from __future__ import annotations

import random

import pytest

from lmforge.data.encode import Encoded, Settings, encode_conversation, encode_conversations
from lmforge.data.skeleton import template_markers
from lmforge.data.types import Conversation

WORDS = "the cat sat on a mat and then it ran to see one big red dog near two small trees".split()
NASTY = [" leading", "trailing ", "x <think>y</think> z", "a\n\nb", "<|im_end|> inside",
         "tab\there", "É 中文 ✓", "quote \" and ' and \\", "{{ not_jinja }}", "UPPER lower"]


def _conversations(n: int, seed: int = 0, nasty: float = 0.2) -> list[Conversation]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        msgs = [{"role": "system", "content": "Be brief."}] if rng.random() < 0.3 else []
        for _ in range(rng.randint(1, 3)):
            for role in ("user", "assistant"):
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 30)))
                if rng.random() < nasty:
                    text = rng.choice(NASTY) + " " + text if rng.random() < 0.5 \
                        else text + " " + rng.choice(NASTY)
                msgs.append({"role": role, "content": text})
        out.append(Conversation(tuple(msgs), where=f"row {len(out)}"))
    return out


def encode_batch(convs, tokenizer, template, settings) -> dict[int, Encoded]:
    """{index: Encoded} of the conversations the batch encoder rendered by the skeleton shortcut
    (empty when the batch is small, the template unusable for it, or a verification
    disagreed)."""
    paths: list[str] = []
    rows = encode_conversations(convs, tokenizer, template, settings, errors="return",
                                paths=paths)
    return {i: row for i, (row, path) in enumerate(zip(rows, paths)) if path == "skeleton"}


def _check(convs, tokenizer, template, settings) -> int:
    fast = encode_batch(convs, tokenizer, template, settings)
    for i, enc in fast.items():
        slow = encode_conversation(convs[i], tokenizer, template, settings)
        assert (enc.input_ids, enc.labels, enc.truncated, enc.dropped) == \
            (slow.input_ids, slow.labels, slow.truncated, slow.dropped), (i, convs[i])
    return len(fast)


def _templates(tokenizer):
    from lmforge.data.templates import builtin_names, builtin_template

    out = {"tokenizer (marked)": tokenizer.chat_template}
    out["tokenizer (derived)"] = tokenizer.chat_template.replace("{% generation %}", "") \
        .replace("{% endgeneration %}", "")
    out.update({name: builtin_template(name) for name in builtin_names()})
    return out


SETTINGS = [Settings(max_length=4096, train_on="all_assistant"),
            Settings(max_length=4096, train_on="last_assistant"),
            Settings(max_length=4096, train_on="all"),
            Settings(max_length=48, truncation="truncate_prompt"),
            Settings(max_length=48, truncation="truncate_response"),
            Settings(max_length=48, truncation="drop"),
            Settings(max_length=4096, max_target_length=8, max_source_length=40)]


def test_same_rows_every_template_and_setting(tiny_tokenizer):
    convs = _conversations(120)
    for name, template in _templates(tiny_tokenizer).items():
        for settings in SETTINGS:
            _check(convs, tiny_tokenizer, template, settings)


def test_clean_data_takes_the_fast_path(tiny_tokenizer):
    convs = _conversations(100, seed=1, nasty=0.0)
    for name, template in _templates(tiny_tokenizer).items():
        n = _check(convs, tiny_tokenizer, template, SETTINGS[0])
        assert n >= 95, name  # only shapes a template refuses may fall back


def test_contents_a_template_could_branch_on_fall_back(tiny_tokenizer):
    template = ("{%- for m in messages -%}{%- if '</think>' in m['content'] -%}"
                "{{ m['content'].split('</think>')[-1] }}{%- else -%}{{ m['role'] + ': ' + "
                "m['content'] }}{%- endif -%}\n{%- endfor -%}")
    assert "</think>" in template_markers(template)
    convs = _conversations(60, seed=2)
    fast = encode_batch(convs, tiny_tokenizer, template, Settings(train_on="all"))
    assert fast and all("</think>" not in m["content"] for i in fast
                        for m in convs[i].messages)
    _check(convs, tiny_tokenizer, template, Settings(train_on="all"))


def test_content_transforming_template_is_detected(tiny_tokenizer):
    template = ("{%- for m in messages -%}{{ m['role'] }}: "
                "{% generation %}{{ m['content'] | upper }}{% endgeneration %}\n{%- endfor -%}")
    assert encode_batch(_conversations(40, nasty=0.0), tiny_tokenizer, template,
                        Settings()) == {}


def test_verification_switches_back_on_disagreement(tiny_tokenizer):
    # branches on the content's length: the probes do not catch it, the verification does
    template = ("{%- for m in messages -%}{%- if m['content'] | length > 60 -%}LONG {% endif -%}"
                "{{ m['role'] }}: {% generation %}{{ m['content'] }}{% endgeneration %}\n"
                "{%- endfor -%}")
    convs = _conversations(64, seed=3, nasty=0.0)
    long = Conversation(({"role": "user", "content": "word " * 20 + "end"},
                         {"role": "assistant", "content": "ok"}))
    assert encode_batch([long] + convs, tiny_tokenizer, template, Settings()) == {}


@pytest.mark.parametrize("packing", [False, True])
def test_pipeline_builds_the_same_dataset(tiny_model_dir, tmp_path, monkeypatch, packing):
    from lmforge.config import validate
    from lmforge.data import pipeline
    from lmforge.data.templates import resolve_template
    from lmforge.model.loader import load_tokenizer
    from tests.conftest import write_jsonl

    rows = [{"messages": list(c.messages)} for c in _conversations(80, seed=4)]
    cfg = validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                    "data": {"train": str(write_jsonl(tmp_path / "t.jsonl", rows)),
                             "format": "messages", "max_length": 64, "cache": False,
                             "packing": packing},
                    "train": {"output_dir": str(tmp_path / "run")}})
    tok = load_tokenizer(cfg.model)
    template = resolve_template("auto", tok)
    fast = pipeline.build(cfg, tok, template)
    from lmforge.data import encode

    # no shortcut anywhere: every batch renders with Jinja (the reference path)
    monkeypatch.setattr(encode, "MIN_BATCH", 10**9)
    slow = pipeline.build(cfg, tok, template)
    assert fast.train.to_dict() == slow.train.to_dict()
    assert {k: v for k, v in fast.stats.items() if k != "fingerprint"} == \
        {k: v for k, v in slow.stats.items() if k != "fingerprint"}
