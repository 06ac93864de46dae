"""Property-based tests (hypothesis) over the config loader: random trees of known and misspelled
keys with values of every type, random YAML documents and bytes (invalid UTF-8, tabs, anchors,
non-mapping tops), random overrides, unknown templates.

The property: a valid RunConfig, or a ConfigError whose every problem starts with the dotted path
(or file:line) it is about; never another exception.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))

SCALAR = st.one_of(st.text(max_size=12), st.integers(-10**12, 10**12), st.floats(),
                   st.booleans(), st.none(), st.sampled_from(["auto", "lora", "sft", "1e-4", ""]))
VALUE = st.recursive(SCALAR, lambda c: st.one_of(
    st.lists(c, max_size=3), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), c,
                                             max_size=3)), max_leaves=8)


def _sections():
    from lmforge.config.run import RunConfig

    out = {}
    for name, field in RunConfig.model_fields.items():
        model = _model_of(field.annotation)
        out[name] = sorted(model.model_fields) if model is not None else []
    return out


def _model_of(annotation):
    from lmforge.config.report import _model_in

    return _model_in(annotation)


SECTIONS = _sections()
KEYS = st.sampled_from(sorted({k for keys in SECTIONS.values() for k in keys}))


@st.composite
def trees(draw):
    tree = {}
    for name, keys in SECTIONS.items():
        kind = draw(st.sampled_from(["absent", "absent", "section", "value"]))
        if name in ("model", "stage") and draw(st.booleans()):
            kind = "good"
        if kind == "good":
            tree[name] = {"path": "m"} if name == "model" else draw(
                st.sampled_from(["sft", "pt", "dpo", "grpo", "nope"]))
        elif kind == "section" and keys:
            sub = {}
            for key in draw(st.lists(st.one_of(st.sampled_from(keys), KEYS,
                                               st.text(max_size=6)), max_size=4)):
                sub[key] = draw(VALUE)
            tree[name] = sub
        elif kind != "absent":
            tree[name] = draw(VALUE)
    tree.update(draw(st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), VALUE,
                                     max_size=1)))
    return tree


def _check_config_error(err) -> None:
    assert err.problems
    for problem in err.problems:
        assert isinstance(problem, str) and re.match(r"^[^\s:][^:]*:", problem), problem


def _validate(tree) -> None:
    from lmforge.config import validate
    from lmforge.errors import ConfigError

    try:
        cfg = validate(tree)
    except ConfigError as err:
        _check_config_error(err)
        return
    assert cfg.model.path and cfg.stage  # a valid config is a usable one
    for value in (cfg.train.learning_rate, cfg.train.epochs):
        assert math.isfinite(value) or value == math.inf


@FAST
@given(trees())
def test_fuzz_validate_gives_a_config_or_a_config_error(tree):
    _validate(tree)


YAML_TEXT = st.one_of(
    st.text(max_size=80),
    st.builds(lambda k, v: f"{k}:\n  {v}: [1, 2\n", st.text(max_size=8), st.text(max_size=8)),
    st.sampled_from(["stage: sft\nmodel: {path: m}\n", "- a\n- b\n", "a: &x [*x]\n",
                     "\tstage: sft\n", "stage: sft\nstage: pt\n", "model: !!python/object:os.system"
                     " {}\n", "? [a, b]\n: 1\n", "%YAML 9.9\n---\na: 1\n", "{{{{", ""]))


@FAST
@given(text=YAML_TEXT, junk=st.binary(max_size=8), where=st.integers(0, 100))
def test_fuzz_config_files_load_or_name_the_file(text, junk, where, tmp_path):
    from lmforge.config import load
    from lmforge.errors import ConfigError

    raw = text.encode("utf-8", "surrogatepass")
    raw = raw[:where] + junk + raw[where:] if junk else raw
    path = tmp_path / "run.yaml"
    path.write_bytes(raw)
    try:
        load(str(path))
    except ConfigError as err:
        _check_config_error(err)


@FAST
@given(st.lists(st.text(max_size=20), max_size=3))
def test_fuzz_overrides_apply_or_are_config_errors(tmp_path, overrides):
    from lmforge.config.loader import compose, validate
    from lmforge.errors import ConfigError

    path = tmp_path / "run.yaml"
    path.write_text("stage: sft\nmodel: {path: m}\ndata: {train: t.jsonl}\n")
    try:
        validate(compose(str(path), overrides=overrides))
    except ConfigError as err:
        _check_config_error(err)


@FAST
@given(st.text(max_size=30))
def test_fuzz_unknown_templates_are_config_errors(name):
    from lmforge.data.templates import builtin_names, resolve_template
    from lmforge.errors import ConfigError

    if name in builtin_names() or name == "auto":
        return
    with pytest.raises(ConfigError, match="model.template"):
        resolve_template(name, tokenizer=None)


def test_bad_template_files_are_config_errors(tmp_path, tiny_tokenizer):
    from lmforge.data.templates import check_template, resolve_template
    from lmforge.errors import ConfigError, LmforgeError

    bad = tmp_path / "bad.jinja"
    bad.write_bytes(b"{% for m in messages %}\xff\xfe")
    with pytest.raises(ConfigError, match="bad.jinja"):
        resolve_template(str(bad), tiny_tokenizer)
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}{{ m['content'] }")
    with pytest.raises(LmforgeError):
        check_template(resolve_template(str(broken), tiny_tokenizer), tiny_tokenizer)


@pytest.mark.slow
@SLOW
@given(trees())
def test_fuzz_validate_many_examples(tree):
    _validate(tree)
