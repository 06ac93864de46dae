"""Deprecations are fixed when they appear, not when the library removes the API.

pyproject.toml's filterwarnings turns a DeprecationWarning/FutureWarning attributed to an lmforge
module into an error (raised by lmforge, or by a library with stacklevel=2 because lmforge called
a deprecated API), while third-party ones stay quiet. transformers' own ``gradient_checkpointing``
deprecations (removed in v6) carry no stacklevel, so the paths that used them are checked here.
"""

from __future__ import annotations

import warnings

import pytest

from tests.conftest import REPO

STAGES = ("pt", "sft", "rm", "dpo", "kto", "orpo", "grpo", "ppo")


def _run_as(module: str, source: str, **names):
    """Execute ``source`` as if it were code in ``module`` (the name warnings attribute to)."""
    scope = {"__name__": module, "warnings": warnings, **names}
    exec(compile(source, f"<{module}>", "exec"), scope)
    return scope


@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
def test_a_deprecation_raised_in_lmforge_fails_the_test(category):
    with pytest.raises(category):
        _run_as("lmforge.somewhere", "warnings.warn('old API', category)", category=category)


@pytest.mark.parametrize("category", [DeprecationWarning, FutureWarning])
def test_a_third_party_deprecation_stays_filtered(category):
    _run_as("somelib.core", "warnings.warn('old API', category)", category=category)


def test_a_library_deprecation_blamed_on_lmforge_code_fails_the_test():
    lib = _run_as("somelib.api", "def old():\n"
                                 "    warnings.warn('old() is deprecated', FutureWarning, "
                                 "stacklevel=2)\n")
    with pytest.raises(FutureWarning, match="old"):
        _run_as("lmforge.caller", "old()", old=lib["old"])
    _run_as("otherlib.caller", "old()", old=lib["old"])  # another library's call: quiet


def _checkpointing_deprecations(caught) -> list[str]:
    return [f"{w.filename}:{w.lineno}: {w.message}" for w in caught
            if issubclass(w.category, (DeprecationWarning, FutureWarning))
            and "checkpointing" in str(w.message)]


def test_loading_with_gradient_checkpointing_uses_the_v6_api(tiny_model_dir):
    from lmforge.config.model import ModelConfig
    from lmforge.model.loader import load_model
    from lmforge.model.quant import prepare_kbit

    cfg = ModelConfig(path=str(tiny_model_dir), gradient_checkpointing=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_model(cfg)
        model = prepare_kbit(model)
    assert _checkpointing_deprecations(caught) == []
    assert model.is_activation_checkpointing  # still on after peft's k-bit preparation
    assert not any(p.requires_grad for p in model.parameters())  # prepare_kbit froze the base


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("checkpointing", [False, True])
def test_every_stage_builds_its_arguments_without_checkpointing_deprecations(
        stage, checkpointing, tmp_path, monkeypatch, capsys):
    """`lmforge validate` builds each stage's arguments object (trl's configs included, whose
    default ``gradient_checkpointing=True`` is itself the deprecated alias)."""
    from lmforge.cli import main

    monkeypatch.chdir(REPO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["validate", f"examples/tiny/{stage}.yaml",
                     f"train.output_dir={tmp_path / 'run'}",
                     f"model.gradient_checkpointing={str(checkpointing).lower()}"])
    assert code == 0, capsys.readouterr()
    assert _checkpointing_deprecations(caught) == []
