"""Training invariants through the real sft stage on the tiny model (CPU, fp32).

- gradient accumulation (full model, no dropout): batch 8 x accum 1 and batch 2 x accum 4 give
  the same loss trajectory (within 1e-4) although the micro-batches hold different numbers of
  trained tokens: the Trainer normalises by the trained-token count of the whole accumulated
  batch (num_items_in_batch);
- resume (full, and LoRA with its dropout on so the RNG state matters): a run interrupted after
  step k and resumed (train.resume: auto) ends with the same weights as an uninterrupted run
  (within 1e-6), so optimizer, scheduler, RNG and data position were all restored.
"""

from __future__ import annotations

import random

import pytest

from tests.conftest import write_jsonl

WORDS = "red green blue yellow purple one two three four five six seven eight nine".split()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    rng = random.Random(3)
    rows = []
    for i in range(32):
        answer = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))
        rows.append({"instruction": f"Say item {i}.", "input": "", "output": answer})
    return write_jsonl(tmp_path_factory.mktemp("inv") / "train.jsonl", rows)


def _cfg(tiny_model_dir, data_file, out, adapter="full", **train):
    from lmforge.config import validate

    base = {"output_dir": str(out), "learning_rate": 3e-3, "lr_scheduler": "cosine",
            "warmup_ratio": 0.1, "logging_steps": 1, "save_steps": 1000, "report_to": ["none"],
            "seed": 7, "num_threads": 1}
    base.update(train)
    return validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                     "adapter": {"type": adapter},  # lora: dropout 0.05, so RNG matters
                     "data": {"train": str(data_file), "format": "alpaca", "max_length": 64},
                     "train": base})


def _losses(result) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in result.log_history if "loss" in h}


def _weights(path):
    from safetensors.torch import load_file

    name = "model.safetensors" if (path / "model.safetensors").is_file() else \
        "adapter_model.safetensors"
    return load_file(str(path / name))


def test_grad_accumulation_matches_full_batch(tiny_model_dir, data_file, tmp_path):
    from lmforge.stages import run

    full = run(_cfg(tiny_model_dir, data_file, tmp_path / "b8", batch_size=8, grad_accum=1,
                    max_steps=6))
    accum = run(_cfg(tiny_model_dir, data_file, tmp_path / "b2", batch_size=2, grad_accum=4,
                     max_steps=6))
    a, b = _losses(full), _losses(accum)
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-4), f"step {step}"
    assert a[6] < a[1]  # it trained
    wa, wb = _weights(tmp_path / "b8"), _weights(tmp_path / "b2")
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-4


@pytest.mark.parametrize("adapter", ["full", "lora"])
def test_resume_ends_with_the_same_weights(tiny_model_dir, data_file, tmp_path,
                                           adapter):
    from lmforge.stages import run
    from lmforge.training.callbacks import StopAtStep

    # 8 steps per epoch: the resumed part crosses an epoch boundary
    kw = dict(adapter=adapter, batch_size=4, max_steps=12, save_steps=5)
    straight = run(_cfg(tiny_model_dir, data_file, tmp_path / "straight", **kw))

    out = tmp_path / "interrupted"
    first = run(_cfg(tiny_model_dir, data_file, out, **kw), callbacks=[StopAtStep(5)])
    assert first.metrics["global_step"] == 5 and (out / "checkpoint-5").is_dir()
    resumed = run(_cfg(tiny_model_dir, data_file, out, resume="auto", **kw))

    assert resumed.metrics["global_step"] == 12
    # only steps 6..12 ran in the resumed process; their losses match the straight run
    assert resumed.metrics["train_tokens"] < straight.metrics["train_tokens"]
    a, b = _losses(straight), _losses(resumed)
    for step in range(6, 13):
        assert b[step] == pytest.approx(a[step], abs=1e-6), f"step {step}"
    wa, wb = _weights(tmp_path / "straight"), _weights(out)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) <= 1e-6
