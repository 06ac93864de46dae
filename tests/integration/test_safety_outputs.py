"""Only safetensors are written for weights: a training run's output directory and checkpoints hold
no pickle except the optimizer / scheduler / RNG states, which transformers reads back with
``torch.load(weights_only=True)`` (tensors, numpy arrays, plain containers: no code); Trainer's pickled
``training_args.bin`` is replaced by ``training_args.json``. (Refusing pickle weights and remote
code on load: tests/integration/test_model_loading.py and tests/unit/test_model_config.py.)"""

from __future__ import annotations

import pytest

from tests.conftest import REPO

STATE_FILES = {"optimizer.pt", "scheduler.pt", "rng_state.pth"}
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_runs_write_safetensors_and_json_only(tiny_model_dir, tmp_path, adapter):
    import torch

    from lmforge.config import validate
    from lmforge.stages import run

    out = tmp_path / adapter
    cfg = validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                    "adapter": {"type": adapter},
                    "data": {"train": str(REPO / "examples/data/toy_train.jsonl"),
                             "format": "alpaca", "max_length": 48},
                    "train": {"output_dir": str(out), "max_steps": 2, "save_steps": 1,
                              "batch_size": 4, "report_to": ["none"], "num_threads": 1}})
    run(cfg)
    files = [p for p in out.rglob("*") if p.is_file()]
    pickles = [p for p in files if p.suffix in PICKLE_SUFFIXES]
    assert pickles and all(p.name in STATE_FILES and p.parent.name.startswith("checkpoint-")
                           for p in pickles), pickles
    from transformers.trainer_pt_utils import safe_globals

    with safe_globals():  # what Trainer allows: numpy arrays for the RNG state, nothing callable
        for p in pickles:
            torch.load(p, weights_only=True)
    weights = [p for p in files if p.suffix == ".safetensors"]
    assert {p.parent for p in weights} == {out, out / "checkpoint-1", out / "checkpoint-2"}
    assert not any(p.name == "training_args.bin" for p in files)
    assert {p.parent for p in files if p.name == "training_args.json"} == {
        out, out / "checkpoint-1", out / "checkpoint-2"}
