"""Quiet by default: the whole stdout+stderr of a tiny training run is lmforge's own lines (no
DeepSpeed banner, bitsandbytes offline warnings, progress bars of datasets/transformers, LOAD
REPORT table or library warnings); --debug / LMFORGE_VERBOSE=1 lets the libraries speak."""

from __future__ import annotations

import importlib.util
import re

import pytest

from tests.conftest import REPO, run_cli

# what lmforge prints: rich log records (a time stamp or the aligned continuation of one), its
# progress bar, and the final summary
OWN = re.compile(r"^(\[\d\d:\d\d:\d\d\] +(INFO|WARNING|ERROR) |\s{10,}\S|train [━─]|done: |  \w+=)")
NOISE = ("kernels-community", "Setting accelerator", "Map:", "Loading weights", "LOAD REPORT",
         "Writing model shards", "Warning:", "[WARNING]", "it/s]",
         "Using function/layer")  # the kernels library, at every train / eval switch


def _train(tmp_path, stage: str, *extra: str, env: dict | None = None):
    out = run_cli("train", f"examples/tiny/{stage}.yaml", "train.max_steps=2",
                  f"train.output_dir={tmp_path / stage}", "train.save_steps=2",
                  "train.eval_steps=2", f"data.cache_dir={tmp_path / 'cache'}", *extra,
                  cwd=REPO, env={"COLUMNS": "100", "OMP_NUM_THREADS": "1", **(env or {})})
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


@pytest.mark.parametrize("stage", ["sft", "rm"])
def test_training_output_is_only_lmforge_lines(tmp_path, stage):
    text = _train(tmp_path, stage)
    lines = [line for line in text.splitlines() if line.strip()]
    foreign = [line for line in lines if not OWN.match(line)]
    assert not foreign, "not lmforge's lines:\n" + "\n".join(foreign)
    assert not [line for line in lines if any(n in line for n in NOISE)], text
    assert any(line.startswith("done: ") for line in lines)


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None,
                    reason="the library messages checked come from torchao, which peft and "
                           "transformers import when it is installed")
def test_verbose_shows_the_libraries(tmp_path):
    # (a run without DeepSpeed no longer imports it, so its "Setting accelerator to CPU" banner
    # is gone in both modes: training/compat.py)
    text = _train(tmp_path, "sft", env={"LMFORGE_VERBOSE": "1"})
    assert "torchao" in text, text
    assert [line for line in text.splitlines() if line.strip() and not OWN.match(line)], text
