"""vLLM paths on a machine without vLLM or a CUDA GPU: serve/predict/eval ``--backend vllm`` and
``grpo.use_vllm`` fail up front (before any model loads) with one error naming the extra and the
GPU requirement. The vLLM runs themselves are in tests/gpu/test_vllm.py."""

from __future__ import annotations

import importlib.util
import types

import pytest

from lmforge.infer import vllm_check
from tests.conftest import REPO


@pytest.fixture
def no_vllm(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else real(name, *a))


@pytest.fixture
def vllm_without_gpu(monkeypatch):
    import torch

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: types.SimpleNamespace()
                        if name == "vllm" else real(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def no_model_loads(monkeypatch):
    from lmforge.infer.engine import ChatEngine

    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the vLLM check")

    monkeypatch.setattr(ChatEngine, "load", classmethod(refuse))


def test_the_problem_names_what_is_missing(no_vllm):
    assert "not installed" in vllm_check.vllm_problem()
    with pytest.raises(Exception) as err:
        vllm_check.require_vllm("lmforge serve --backend vllm")
    assert "lmforge serve --backend vllm" in str(err.value)
    assert "lmforge[vllm]" in err.value.hint and "CUDA GPU" in err.value.hint


def test_installed_but_no_gpu_says_cuda(vllm_without_gpu):
    assert "CUDA GPU" in vllm_check.vllm_problem()


@pytest.mark.parametrize("command", [
    ["serve", "{model}", "--backend", "vllm", "--port", "8123"],
    ["predict", "{model}", "--input", "{input}", "--output", "{output}", "--backend", "vllm"],
    ["eval", "{model}", "--data-file", "{input}", "--backend", "vllm"],
])
def test_backend_vllm_fails_before_loading(command, tiny_model_dir, tmp_path, capsys, no_vllm,
                                           no_model_loads):
    from lmforge.cli import main

    rows = tmp_path / "in.jsonl"
    rows.write_text('{"prompt": "hi", "response": "hello"}\n')
    args = [a.format(model=tiny_model_dir, input=rows, output=tmp_path / "out.jsonl")
            for a in command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--backend vllm" in err and "lmforge[vllm]" in err and "CUDA GPU" in err
    assert "Traceback" not in err and not (tmp_path / "out.jsonl").exists()


def test_grpo_use_vllm_is_checked_when_the_config_is_validated(no_vllm):
    from lmforge.config.loader import load
    from lmforge.errors import ConfigError

    plain = load(str(REPO / "examples/tiny/grpo.yaml"))
    assert plain.method().use_vllm is False
    with pytest.raises(ConfigError) as err:
        load(str(REPO / "examples/tiny/grpo.yaml"), overrides=["grpo.use_vllm=true"])
    text = str(err.value)
    assert "use_vllm" in text and "lmforge[vllm]" in text and "CUDA GPU" in text


def test_grpo_build_args_passes_use_vllm(monkeypatch):
    from lmforge.config.loader import load
    from lmforge.stages.grpo import build_args

    cfg = load(str(REPO / "examples/tiny/grpo.yaml"))
    assert build_args(cfg, has_eval=False).use_vllm is False
    monkeypatch.setattr(vllm_check, "vllm_problem", lambda: None)  # as on a GPU machine
    on = load(str(REPO / "examples/tiny/grpo.yaml"), overrides=["grpo.use_vllm=true"])
    assert on.method().use_vllm is True
    args = build_args(on, has_eval=False)  # trl checks vLLM itself only when the trainer starts
    assert args.use_vllm is True and args.vllm_mode == "colocate"
