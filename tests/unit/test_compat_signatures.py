"""lmforge's only private transformers API (training/compat.py) still has the shape lmforge
overrides, and no other module overrides a private Trainer method.

When a transformers release changes one of these, this test names it: update compat.py (and its
docstring's reasons) before anything else."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "lmforge"
# private Trainer methods lmforge must not override outside compat.py
PRIVATE = {"_inner_training_loop", "_save_checkpoint", "_get_output_dir", "_get_train_sampler",
           "_save", "_load_best_model", "_maybe_log_save_evaluate", "_load_from_checkpoint"}


@pytest.mark.parametrize("name", ["_save_checkpoint", "_get_output_dir"])
def test_private_trainer_methods_have_the_expected_parameters(name):
    from transformers import Trainer

    from lmforge.training.compat import EXPECTED

    method = getattr(Trainer, name, None)
    assert method is not None, f"transformers.Trainer.{name} is gone: update training/compat.py"
    got = tuple(p for p in inspect.signature(method).parameters if p != "self")
    assert got == EXPECTED[name], (
        f"transformers.Trainer.{name}{got} changed (lmforge overrides {name}{EXPECTED[name]}): "
        "update training/compat.py")


def test_signature_problems_is_empty_for_the_installed_transformers():
    from lmforge.training.compat import EXPECTED, signature_problems

    assert set(EXPECTED) == {"_save_checkpoint", "_get_output_dir"}
    assert signature_problems() == []


def test_overrides_in_compat_match_expected():
    from lmforge.training.compat import EXPECTED, StagedSaveMixin

    for name, params in EXPECTED.items():
        got = tuple(p for p in inspect.signature(getattr(StagedSaveMixin, name)).parameters
                    if p != "self")
        assert got == params, name


def test_the_public_hooks_lmforge_overrides_keep_their_parameters():
    """save_model, get_batch_samples and get_train_dataloader are public, but their parameters
    are part of what the mixins pass on."""
    from transformers import Trainer

    def params(f):
        return tuple(p for p in inspect.signature(f).parameters if p != "self")

    assert params(Trainer.save_model) == ("output_dir", "_internal_call")
    assert params(Trainer.get_batch_samples) == ("epoch_iterator", "num_batches", "device")
    assert params(Trainer.get_train_dataloader) == ()


def test_no_private_trainer_override_outside_compat():
    found = []
    for path in SRC.rglob("*.py"):
        if path.name == "compat.py" and path.parent.name == "training":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                found += [f"{path.relative_to(SRC)}:{item.lineno} {node.name}.{item.name}"
                          for item in node.body
                          if isinstance(item, ast.FunctionDef) and item.name in PRIVATE]
    assert not found, found
