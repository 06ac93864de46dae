"""Device facts are decided once (training/device.py) and honour ``train.use_cpu`` everywhere
(issue 18, item 3). A pretend GPU (``torch.cuda.is_available`` -> True) is enough: with
``train.use_cpu: true`` every fact says CPU -- weights float32, attention not flash, quantized
loads mapped to the CPU, precision fp32, no Liger -- and transformers' own TrainingArguments
(the Trainer's truth) agree; without it the GPU facts are chosen. No GPU is needed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lmforge.errors import ConfigError, ModelError

SRC = Path(__file__).resolve().parents[2] / "src" / "lmforge"


@pytest.fixture
def hf_imported():
    """transformers' Trainer stack imported for real before a GPU is pretended (importing it
    under a pretend GPU would load bitsandbytes' CUDA backend)."""
    from transformers import Trainer, TrainingArguments  # noqa: F401


@pytest.fixture
def pretend_gpu(monkeypatch):
    """CUDA "available" with bf16, flash-attn and liger-kernel "installed"."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.delenv("LMFORGE_NO_FLASH_ATTENTION", raising=False)
    from lmforge.training import device

    monkeypatch.setattr(device, "_installed", lambda name: True)


def _cfg(tmp_path, stage="sft", model=None, **train):
    from lmforge.config import validate

    train = {"output_dir": str(tmp_path / "out"), "report_to": ["none"], **train}
    return validate({"stage": stage, "model": {"path": "x", **(model or {})}, "train": train})


def test_use_cpu_on_a_gpu_machine_makes_every_fact_cpu(pretend_gpu, tmp_path):
    import torch

    from lmforge.training.device import decide, on_gpu

    cfg = _cfg(tmp_path, use_cpu=True)
    facts = decide(cfg)
    assert not on_gpu(cfg) and facts.on_gpu is False and facts.use_cpu and facts.device == "cpu"
    assert facts.dtype == "float32" and facts.torch_dtype() is torch.float32
    assert facts.attention is None  # transformers' default (sdpa), never flash on the CPU
    assert facts.model_kwargs() == {"dtype": torch.float32}
    assert facts.quant_device_map() == {"": "cpu"}  # not left to bitsandbytes' "a GPU exists"
    assert facts.precision == "fp32" and facts.liger is False
    assert facts.training_kwargs() == {"use_cpu": True, "bf16": False, "fp16": False}


def test_without_use_cpu_the_gpu_facts_are_chosen(pretend_gpu, tmp_path, monkeypatch):
    import torch

    from lmforge.training.device import decide

    monkeypatch.setenv("LOCAL_RANK", "1")
    facts = decide(_cfg(tmp_path))
    assert facts.on_gpu and facts.device == "cuda"
    assert facts.dtype == "bfloat16" and facts.attention == "flash_attention_2"
    assert facts.model_kwargs() == {"dtype": torch.bfloat16,
                                    "attn_implementation": "flash_attention_2"}
    assert facts.quant_device_map() == {"": 1}  # this process's GPU
    assert facts.training_kwargs() == {"use_cpu": False, "bf16": True, "fp16": False,
                                       "use_liger_kernel": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    old = decide(_cfg(tmp_path))
    assert old.dtype == "float16" and old.precision == "fp16"
    fp32 = decide(_cfg(tmp_path, precision="fp32"))  # dtype auto follows an fp32 precision
    assert fp32.dtype == "float32" and fp32.attention is None and fp32.precision == "fp32"
    # fp16 keeps float32 copies of what it trains (GradScaler cannot unscale fp16 gradients):
    # full and freeze training load float32 weights, an adapter's frozen base float16
    for kind, want in (("full", "float32"), ("freeze", "float32"), ("lora", "float16")):
        cfg = _cfg(tmp_path, precision="fp16")
        cfg = cfg.model_copy(update={"adapter": cfg.adapter.model_copy(update={"type": kind})})
        assert decide(cfg).dtype == want, kind


def test_gpu_bf16_support_counts_native_bf16_only(monkeypatch):
    """auto picks fp16 on a T4/V100: torch counts emulated bf16 unless asked not to."""
    import torch

    from lmforge.training import device

    seen = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: seen.append(including_emulation))
    device._bf16_supported()
    assert seen == [False]


def test_gpu_only_settings_with_use_cpu_are_errors_that_say_why(pretend_gpu, tmp_path,
                                                                monkeypatch):
    from lmforge.training import device
    from lmforge.training.device import decide

    monkeypatch.setattr(device, "cpu_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="train.use_cpu is set and this CPU has neither"):
        decide(_cfg(tmp_path, use_cpu=True, precision="bf16"))
    with pytest.raises(ConfigError, match="'fp16' needs a GPU and train.use_cpu is set"):
        decide(_cfg(tmp_path, use_cpu=True, precision="fp16"))
    with pytest.raises(ModelError, match="flash_attention_2 needs a CUDA GPU and this run is on "
                                         "the CPU"):
        decide(_cfg(tmp_path, model={"attn_implementation": "flash_attention_2"}, use_cpu=True))
    # an explicit dtype is the user's choice and is kept
    assert decide(_cfg(tmp_path, model={"dtype": "bfloat16"}, use_cpu=True)).dtype == "bfloat16"


def test_training_arguments_agree_with_the_facts(hf_imported, pretend_gpu, tmp_path):
    """transformers' TrainingArguments decide where the Trainer runs: with use_cpu they say CPU
    and fp32, as the facts do, although a GPU is "present"."""
    from lmforge.training.args import build_arguments
    from lmforge.training.device import decide

    cfg = _cfg(tmp_path, use_cpu=True, stage="sft")
    facts = decide(cfg)
    args = build_arguments(cfg, has_eval=False)
    assert args.use_cpu is facts.use_cpu is True
    assert args.device.type == facts.device == "cpu" and args.n_gpu == 0
    assert args.bf16 is args.fp16 is False and not args.use_liger_kernel


def test_inference_entry_point(pretend_gpu, monkeypatch):
    """Commands without a train config: the GPU when present, or the device they are given."""
    from lmforge.config.model import ModelConfig
    from lmforge.training.device import for_inference, inference_device

    model = ModelConfig(path="x")
    assert inference_device() == "cuda"
    gpu = for_inference(model)
    assert gpu.on_gpu and gpu.dtype == "bfloat16" and gpu.attention == "flash_attention_2"
    cpu = for_inference(model, device="cpu")
    assert not cpu.on_gpu and cpu.dtype == "float32" and cpu.attention is None


def test_the_cpu_only_model_load_uses_the_facts(tiny_model_dir, tmp_path, hf_imported,
                                                pretend_gpu):
    """The training load (prepare_model) on a "GPU machine" with use_cpu: float32 weights and
    no flash-attention, although inference facts on the same machine would choose both."""
    import torch

    from lmforge.config import validate
    from lmforge.training.trainer import prepare_model

    cfg = validate({"stage": "sft", "model": {"path": str(tiny_model_dir)},
                    "adapter": {"type": "full"},
                    "train": {"output_dir": str(tmp_path), "use_cpu": True}})
    model = prepare_model(cfg, None)
    assert model.dtype == torch.float32
    assert model.config._attn_implementation != "flash_attention_2"


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def test_gpu_decided_in_one_place_and_training_loads_pass_the_facts():
    """Only utils/gpu.py (used by training/device.py) asks torch whether CUDA is available (the others:
    emptying caches, saving CUDA RNG state, which are no decisions), and every load_model call in
    the training runtime and the stage recipes passes the run's facts."""
    housekeeping = {"sweep/trial.py", "eval/cli_eval.py", "rl/state.py"}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        text = path.read_text(encoding="utf-8")
        if rel not in ("training/device.py", "utils/gpu.py") and rel not in housekeeping:
            assert "cuda.is_available" not in text and "is_bf16_supported" not in text, rel
        if rel.startswith(("training/", "stages/")):
            for call in _calls(ast.parse(text), "load_model"):
                assert any(k.arg == "facts" for k in call.keywords), f"{rel}:{call.lineno}"


def test_bf16_on_a_cpu_with_native_bf16_is_autocast_over_float32_weights(hf_imported, tmp_path,
                                                                         monkeypatch):
    """AMX / AVX512-BF16 CPUs: train.precision bf16 is allowed (transformers autocasts on the
    CPU), the weights stay float32; auto stays fp32 on the CPU (exact, reproducible)."""
    from lmforge.training import device
    from lmforge.training.args import build_arguments

    monkeypatch.setattr(device, "gpu_present", lambda: False)
    monkeypatch.setattr(device, "cpu_native_bf16", lambda: True)
    cfg = _cfg(tmp_path, precision="bf16")
    facts = device.decide(cfg)
    assert facts.precision == "bf16" and facts.dtype == "float32" and facts.use_cpu
    assert facts.training_kwargs() == {"use_cpu": True, "bf16": True, "fp16": False}
    args = build_arguments(cfg, has_eval=False)
    assert args.bf16 and args.use_cpu and args.device.type == "cpu"
    assert device.decide(_cfg(tmp_path)).precision == "fp32"
    monkeypatch.setattr(device, "cpu_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="there is no CUDA GPU and this CPU has neither"):
        device.decide(cfg)


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    from lmforge.training.device import cpu_native_bf16

    flags = "processor\t: 0\nflags\t\t: fpu sse avx512f {}\n"
    for extra, want in (("avx512_bf16", True), ("amx_bf16 amx_tile", True), ("avx2", False)):
        (tmp_path / "cpuinfo").write_text(flags.format(extra))
        assert cpu_native_bf16(str(tmp_path / "cpuinfo")) is want
    assert cpu_native_bf16(str(tmp_path / "missing")) is False


def test_inference_precision(monkeypatch):
    from lmforge.training import device

    monkeypatch.setattr(device, "cpu_native_bf16", lambda: True)
    assert device.inference_precision("bf16", on_gpu=False) == "bf16"
    assert device.inference_precision("bf16", on_gpu=True) == "fp32"  # the weights' dtype rules
    monkeypatch.setattr(device, "cpu_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="needs native bf16"):
        device.inference_precision("bf16", on_gpu=False)
    with pytest.raises(ConfigError, match="not one of fp32, bf16"):
        device.inference_precision("fp16", on_gpu=False)


def test_pad_multiple_auto_is_16_for_bf16_on_the_cpu_only(pretend_gpu, tmp_path, monkeypatch):
    """train.pad_to_multiple_of auto: 16 for CPU bf16 (oneDNN's bf16 path fragments the heap
    with a new length in every batch), none elsewhere; an explicit value wins; 0 is refused."""
    from lmforge.training import device

    monkeypatch.setattr(device, "cpu_native_bf16", lambda: True)
    assert device.decide(_cfg(tmp_path, use_cpu=True, precision="bf16")).pad_multiple == 16
    assert device.decide(_cfg(tmp_path, use_cpu=True)).pad_multiple is None  # fp32
    assert device.decide(_cfg(tmp_path, precision="bf16")).pad_multiple is None  # the GPU
    assert device.decide(_cfg(tmp_path, pad_to_multiple_of=8)).pad_multiple == 8
    assert device.decide(_cfg(tmp_path, use_cpu=True, precision="bf16",
                              pad_to_multiple_of=1)).pad_multiple is None
    with pytest.raises(ConfigError, match="pad_to_multiple_of"):
        _cfg(tmp_path, pad_to_multiple_of=0)
