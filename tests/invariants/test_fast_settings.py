"""Speed settings that need no numbers to stay equal, checked for what they decide
(training/device.py): CPU threads (physical cores, cgroup quotas), and the GPU kernels chosen
automatically (Liger, flash-attention) -- their decisions are tested with a pretend GPU; the
kernels themselves need a real one and are not run by this CPU suite."""

from __future__ import annotations

import importlib.util
import os

import pytest


def test_threads_default_to_physical_cores(monkeypatch):
    from lmforge.training.cpu_threads import cpu_threads, physical_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = physical_cores()
    assert 1 <= cores <= (os.cpu_count() or cores)
    assert cpu_threads(None) == cores and cpu_threads(3) == 3


def test_threads_follow_omp_num_threads_unless_configured(monkeypatch):
    from lmforge.training.cpu_threads import cpu_threads, physical_cores

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads(None) == 1 and cpu_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert cpu_threads(None) == physical_cores()


@pytest.mark.parametrize("text,expected", [("150000 100000", 2), ("100000 100000", 1),
                                           ("max 100000", None), ("garbage", None)])
def test_cgroup_quota(tmp_path, text, expected):
    from lmforge.training.cpu_threads import _cgroup_quota

    (tmp_path / "cpu.max").write_text(text + "\n")
    assert _cgroup_quota(str(tmp_path / "cpu.max")) == expected
    assert _cgroup_quota(str(tmp_path / "missing")) is None


def test_setup_torch_applies_the_thread_default(tmp_path, monkeypatch):
    import torch

    from lmforge.config import validate
    from lmforge.training.common import setup_torch
    from lmforge.training.cpu_threads import physical_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        cfg = {"stage": "sft", "model": {"path": "x"}, "train": {"output_dir": str(tmp_path)}}
        setup_torch(validate(cfg))
        assert torch.get_num_threads() == physical_cores()
        cfg["train"]["num_threads"] = 1
        setup_torch(validate(cfg))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def pretend_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object()
                        if name in ("liger_kernel", "flash_attn") else real(name, *a))


def _cfg(stage="sft", **train):
    from lmforge.config import validate

    return validate({"stage": stage, "model": {"path": "x"}, "train": dict(train)})


def test_gpu_kernels_decisions(pretend_gpu, monkeypatch):
    import torch

    from lmforge.training.device import decide

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert decide(_cfg()).training_kwargs()["use_liger_kernel"] is True
    assert "use_liger_kernel" not in decide(_cfg(use_cpu=True)).training_kwargs()
    assert decide(_cfg("dpo")).liger is False


def test_no_gpu_kernels_on_cpu():
    import torch

    from lmforge.training.device import decide

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    facts = decide(_cfg())
    assert facts.liger is False and facts.attention is None


def test_flash_attention_chosen_automatically(pretend_gpu, monkeypatch):
    import torch

    from lmforge.config import validate
    from lmforge.training.device import for_inference

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    def attention(**kw):
        return for_inference(validate({"stage": "sft", "model": dict({"path": "x"}, **kw)}).model
                             ).model_kwargs().get("attn_implementation")

    assert attention() == "flash_attention_2"
    assert attention(dtype="float32") is None
    assert attention(attn_implementation="sdpa") == "sdpa"
    monkeypatch.setenv("LMFORGE_NO_FLASH_ATTENTION", "1")
    assert attention() is None


def test_liger_turns_the_fast_loss_off():
    from types import SimpleNamespace

    from lmforge.training.fastloss import install

    for liger, expected in ((False, True), (True, False)):
        trainer = SimpleNamespace(args=SimpleNamespace(use_liger_kernel=liger))
        install(trainer, _cfg(group_by_length=True))
        assert trainer.fast_loss is expected and trainer.group_by_length is True
