"""Resource faults: a full disk while a checkpoint is written, out-of-memory during training, and
what the user sees (the CLI prints 'error:' + 'hint:', never a traceback)."""

from __future__ import annotations

import errno
import os

import pytest

from tests.conftest import REPO

TOY = str(REPO / "examples/data/toy_train.jsonl")


def _cfg(model_dir, out, **train):
    from lmforge.config import validate

    t = {"output_dir": str(out), "max_steps": 6, "save_steps": 2, "batch_size": 4,
         "logging_steps": 1, "report_to": ["none"], "num_threads": 1}
    t.update(train)
    return validate({"stage": "sft", "model": {"path": str(model_dir)},
                     "adapter": {"type": "full"},
                     "data": {"train": TOY, "format": "alpaca", "max_length": 64}, "train": t})


@pytest.mark.parametrize("where", ["optimizer", "weights"])
def test_disk_full_while_saving_keeps_the_previous_checkpoint(tiny_model_dir, tmp_path,
                                                              monkeypatch, where):
    import torch
    import transformers.modeling_utils as mu

    from lmforge.errors import TrainingError
    from lmforge.stages import run
    from lmforge.training.checkpoints import checkpoint_dirs, latest_complete, verify

    out = tmp_path / where
    real_save, real_st = torch.save, mu.safe_save_file

    def full(path) -> bool:
        return "checkpoint-4" in str(path)

    def torch_save(obj, f, *a, **kw):  # optimizer.pt: torch raises OSError / RuntimeError
        if full(f):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))
        return real_save(obj, f, *a, **kw)

    def st_save(tensors, filename, *a, **kw):  # model.safetensors: safetensors' own error
        if full(filename):
            raise RuntimeError("Error while serializing: IoError(Os { code: 28, kind: "
                               "StorageFull, message: \"No space left on device\" })")
        return real_st(tensors, filename, *a, **kw)

    if where == "optimizer":
        monkeypatch.setattr(torch, "save", torch_save)
    else:
        monkeypatch.setattr(mu, "safe_save_file", st_save)
    with pytest.raises(TrainingError) as err:
        run(_cfg(tiny_model_dir, out))
    text = str(err.value)
    assert "checkpoint-4" in text and "disk full" in text
    assert f"still {out / 'checkpoint-2'}" in text and "save_total_limit" in err.value.hint
    assert [p.name for p in checkpoint_dirs(out)] == ["checkpoint-2"]
    assert verify(out / "checkpoint-2") is None
    assert not list(out.glob(".partial-*"))  # the half-written save is cleaned up
    monkeypatch.undo()  # space again: the run resumes from checkpoint-2 and finishes
    result = run(_cfg(tiny_model_dir, out, resume="auto"))
    assert result.metrics["global_step"] == 6 and latest_complete(out).endswith("checkpoint-6")


def test_out_of_memory_becomes_advice_from_the_cli(tiny_model_dir, tmp_path, monkeypatch,
                                                   capsys):
    import yaml
    from transformers import Trainer

    from lmforge import cli

    def oom(self, *a, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    import torch

    monkeypatch.setattr(Trainer, "training_step", oom)
    cfg = {"stage": "sft", "model": {"path": str(tiny_model_dir)}, "adapter": {"type": "full"},
           "data": {"train": TOY, "format": "alpaca", "max_length": 512},
           "train": {"output_dir": str(tmp_path / "o"), "max_steps": 2, "batch_size": 8,
                     "report_to": ["none"], "num_threads": 1}}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli.main(["train", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error: out of memory (OutOfMemoryError: CUDA out of memory" in err
    for tip in ("train.batch_size: 4 with train.grad_accum: 2", "gradient_checkpointing: true",
                "adapter.type: lora", "data.max_length: 256"):
        assert tip in err, tip
    assert "Traceback" not in err


@pytest.mark.parametrize("exc, kind", [
    (MemoryError(), "oom"),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"),
     "oom"),
    (RuntimeError("CUDA error: out of memory"), "oom"),
    (OSError(errno.ENOSPC, "No space left on device"), "disk"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk"),
    (RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed "
                  "writing file data/3: file write failed"), "disk"),
    (RuntimeError("shape mismatch"), None),
    (ValueError("out of memory"), None),  # not a memory error type: left alone
])
def test_translate_recognises_memory_and_disk_errors(exc, kind):
    from lmforge.config import validate
    from lmforge.training.resource_faults import translate

    cfg = validate({"stage": "sft", "model": {"path": "m"}, "adapter": {"type": "lora"},
                    "data": {"train": "t.jsonl", "max_length": 2048, "packing": True},
                    "train": {"batch_size": 1}})
    err = translate(exc, cfg)
    if kind is None:
        assert err is None
    elif kind == "oom":
        assert err.message.startswith("out of memory")
        assert "adapter.type: qlora" in err.hint and "packed block" in err.hint
        assert "grad_accum" not in err.hint  # batch size 1 already
    else:
        assert err.message.startswith("disk full") and "output_dir" in err.hint
