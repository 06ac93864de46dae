"""Device facts, decided once: GPU or CPU, weights dtype, mixed precision, attention kernel, GPU
kernels (Liger), the quantized-load device map and CPU threads.

Every other module asks here instead of calling ``torch.cuda.is_available()`` itself, so the facts
cannot disagree: a run with ``train.use_cpu: true`` on a GPU machine loads float32 weights with
transformers' default attention on the CPU, quantizes on the CPU, and its TrainingArguments say
``use_cpu=True`` and fp32 -- the same answer everywhere.

- ``decide(cfg)``: a training run (``train.use_cpu`` honoured, ``train.precision`` checked).
  Model loading for training takes these facts (``load_model(..., facts=decide(cfg))``), the
  argument objects take ``training_kwargs()``.
- ``for_inference(model_cfg)``: commands without a train config (chat, serve, eval, export): the
  GPU when there is one.

Rules. GPU = CUDA available and not ``train.use_cpu``. Precision ``auto``: bf16 on a GPU that has
it, else fp16 on a GPU, fp32 on the CPU (exact and reproducible everywhere; bf16 is the user's
choice there). ``bf16`` on the CPU: autocast over float32 weights, allowed where the CPU multiplies
bf16 natively (AVX512-BF16 or AMX: ~7x the fp32 matmul rate on this project's Xeons, 1.7x a LoRA
training step, 2.4x a forward pass; bfloat16 *weights* without autocast measured slower, so the
weights stay float32, except frozen linear weights, stored in bfloat16 once because autocast
would cast them on every pass: ``frozen_bf16``, training/frozen_cast.py), a config error on other
CPUs (emulated bf16 is slower than fp32); fp16 without a GPU is a config error. Weights dtype
``auto``: float32 on the CPU or when the precision is fp32, else bfloat16 on a GPU that has it,
float16 otherwise. Attention ``auto``: flash-attention 2 on a GPU with half-precision weights when
``flash-attn`` is installed (``LMFORGE_NO_FLASH_ATTENTION=1`` opts out), else transformers'
choice (sdpa). Liger kernels: sft/pt on a GPU when ``liger-kernel`` is installed. Quantized
(bitsandbytes) loads go to this process's GPU (LOCAL_RANK) or explicitly to the CPU (left
unset, transformers would put them on a GPU whenever one exists). Threads: ``train.num_threads``,
else ``OMP_NUM_THREADS``, else the physical cores (cgroup quota included).
"""

from __future__ import annotations

from lmforge.utils.gpu import gpu_present  # noqa: F401  (re-exported: device facts use it)

import importlib.util
import os
from dataclasses import dataclass

from lmforge.errors import ConfigError, ModelError
from lmforge.training.cpu_threads import cpu_threads

HALF = ("bfloat16", "float16")
LIGER_STAGES = ("sft", "pt")  # trl's trainers route Liger to their own losses
# stages with forward passes outside autocast (trl's GRPOTrainer generates without it): their
# frozen weights stay float32 (frozen_bf16)
OUTSIDE_AUTOCAST = ("grpo",)


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _bf16_supported() -> bool:
    import torch

    # native only: with emulation counted, a T4/V100 would "support" bf16 and auto would pick
    # it over fp16 there
    return torch.cuda.is_bf16_supported(including_emulation=False)


def cpu_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """The CPU multiplies bfloat16 natively (the avx512_bf16 or amx_bf16 flag). torch's own
    ``mkldnn._is_mkldnn_bf16_supported`` also says yes for plain AVX-512, where oneDNN emulates
    bf16 more slowly than fp32, so the flags are read instead (False where they cannot be)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def cpu_autocast(precision: str):
    """The context inference and lmforge's own loops run under: bf16 autocast on the CPU when
    ``precision`` is bf16, else nothing."""
    import contextlib

    import torch

    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass(frozen=True)
class DeviceFacts:
    on_gpu: bool
    dtype: str  # weights: float32, bfloat16 or float16
    attention: str | None  # attn_implementation for from_pretrained (None: transformers chooses)
    precision: str  # mixed precision of training: fp32, bf16 or fp16
    liger: bool = False  # Liger kernels (TrainingArguments.use_liger_kernel)
    threads: int | None = None  # torch CPU threads (None: leave torch's setting)
    pad_multiple: int | None = None  # padded batches' length rounded up to a multiple of this
    # frozen nn.Linear weights stored in bf16 once (training/frozen_cast.py): CPU bf16 autocast of
    # a peft run without FSDP / DeepSpeed (one dtype per flat buffer), not in OUTSIDE_AUTOCAST
    frozen_bf16: bool = False
    # lmforge's CPU attention: "rows" (fp32 sft/pt, padded or packed: model/row_attention.py) or
    # "float32" (bf16 autocast: float32 where gradients flow, model/float32_attention.py)
    cpu_attention: str | None = None
    # lmforge's layers in transformers' kernel hub (model/cpu_kernels.py: RMSNorm, RoPE as one
    # autograd node each): CPU training without DeepSpeed / FSDP
    cpu_kernels: bool = False

    @property
    def use_cpu(self) -> bool:
        return not self.on_gpu

    @property
    def device(self) -> str:
        return "cuda" if self.on_gpu else "cpu"

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def quant_device_map(self) -> dict:
        """Where bitsandbytes quantizes while loading: this process's GPU (LOCAL_RANK under
        torchrun/accelerate), or the CPU."""
        if self.on_gpu:
            return {"": int(os.environ.get("LOCAL_RANK", "0"))}
        return {"": "cpu"}

    def model_kwargs(self) -> dict:
        """``from_pretrained`` keywords: dtype and attention kernel."""
        kwargs = {"dtype": self.torch_dtype()}
        if self.attention:
            kwargs["attn_implementation"] = self.attention
        return kwargs

    def training_kwargs(self) -> dict:
        """TrainingArguments keywords (transformers' ``use_cpu`` is the Trainer's truth and
        equals ``not on_gpu``)."""
        kwargs = {"use_cpu": self.use_cpu, "bf16": self.precision == "bf16",
                  "fp16": self.precision == "fp16"}
        if self.liger:
            kwargs["use_liger_kernel"] = True
        return kwargs


# ---------------------------------------------------------------- the decisions


def on_gpu(cfg) -> bool:
    """Train on a GPU: CUDA is available and ``train.use_cpu`` is off."""
    return gpu_present() and not cfg.train.use_cpu


def decide(cfg) -> DeviceFacts:
    """The device facts of the training run ``cfg`` (a RunConfig)."""
    gpu = on_gpu(cfg)
    precision = _precision(cfg.train.precision, gpu, cfg.train.use_cpu)
    dtype = _weights_dtype(cfg.model.dtype, gpu, precision,
                           trains_base=cfg.adapter.type in ("full", "freeze"))
    sharded = bool(cfg.train.deepspeed or cfg.train.fsdp)  # flat / partitioned parameters
    return DeviceFacts(on_gpu=gpu, dtype=dtype, attention=_attention(cfg.model, gpu, dtype),
                       precision=precision, liger=gpu and _liger(cfg),
                       threads=cpu_threads(cfg.train.num_threads),
                       pad_multiple=_pad_multiple(cfg.train.pad_to_multiple_of, gpu, precision),
                       frozen_bf16=(precision == "bf16" and not gpu and cfg.adapter.is_peft
                                    and cfg.stage not in OUTSIDE_AUTOCAST and not sharded),
                       cpu_attention=_cpu_attention(cfg, gpu, precision),
                       cpu_kernels=not gpu and not sharded)


def _cpu_attention(cfg, gpu: bool, precision: str) -> str | None:
    if gpu or cfg.model.attn_implementation != "auto":
        return None
    if precision == "bf16":
        return "float32"
    rows = precision == "fp32" and cfg.stage in ("sft", "pt")
    return "rows" if rows else None


def _pad_multiple(choice, gpu: bool, precision: str) -> int | None:
    """``train.pad_to_multiple_of``: auto is 16 for bf16 on the CPU, where a new sequence length
    in almost every batch makes oneDNN's bf16 path fragment the heap (measured: 40 SmolLM2 LoRA
    steps of random lengths grew to 3.5 GB RSS, 2.2 GB padded to 16, at the same speed)."""
    if choice == "auto":
        return 16 if precision == "bf16" and not gpu else None
    return choice if choice > 1 else None


def for_inference(model_cfg, device: str | None = None) -> DeviceFacts:
    """The facts for loading ``model_cfg`` without a train config (chat, serve, eval, export):
    the GPU when there is one, unless ``device`` names another."""
    gpu = gpu_present() if device is None else str(device).startswith("cuda")
    dtype = _weights_dtype(model_cfg.dtype, gpu, None)
    return DeviceFacts(on_gpu=gpu, dtype=dtype, attention=_attention(model_cfg, gpu, dtype),
                       precision="fp32")


def inference_precision(choice: str, on_gpu: bool) -> str:
    """Inference precision: ``fp32`` or ``bf16``. On the CPU bf16 means autocast and needs native
    bf16 (a clear error otherwise); on a GPU the weights' dtype decides (bfloat16 by default), so no
    autocast is added there ("fp32" is returned)."""
    if choice not in ("fp32", "bf16"):
        raise ConfigError(f"precision: '{choice}' is not one of fp32, bf16")
    if choice == "bf16" and not on_gpu and not cpu_native_bf16():
        raise ConfigError("precision: 'bf16' on the CPU needs native bf16 (AVX512-BF16 or AMX), "
                          "which this CPU lacks: use fp32")
    return "fp32" if on_gpu else choice


def inference_device() -> str:
    """Where inference runs by default: "cuda" when a GPU is present, else "cpu"."""
    return "cuda" if gpu_present() else "cpu"


def _precision(choice: str, gpu: bool, use_cpu: bool) -> str:
    if choice == "auto":
        if not gpu:
            return "fp32"
        return "bf16" if _bf16_supported() else "fp16"
    if choice == "bf16" and not gpu and not cpu_native_bf16():
        why = "train.use_cpu is set" if use_cpu else "there is no CUDA GPU"
        raise ConfigError(f"train.precision: 'bf16' needs a GPU or a CPU with native bf16 "
                          f"(AVX512-BF16 or AMX); {why} and this CPU has neither: use fp32 or auto")
    if choice == "fp16" and not gpu:
        why = "train.use_cpu is set" if use_cpu else "there is no CUDA GPU"
        raise ConfigError(f"train.precision: 'fp16' needs a GPU and {why}; use fp32 or auto "
                          "on the CPU (or bf16 on a CPU with native bf16)")
    return choice


def _weights_dtype(name: str, gpu: bool, precision: str | None,
                   trains_base: bool = False) -> str:
    """``precision`` None: inference (the GPU's best half type)."""
    if name != "auto":
        return name
    if not gpu or precision == "fp32":
        return "float32"
    if precision == "fp16":
        # fp16 mixed precision keeps float32 master copies of what it trains: torch's GradScaler
        # refuses to unscale fp16 gradients, so full/freeze training loads float32 weights (an
        # adapter's weights are float32 already, over a frozen float16 base)
        return "float32" if trains_base else "float16"
    if precision == "bf16":
        return "bfloat16"
    return "bfloat16" if _bf16_supported() else "float16"


def _attention(model_cfg, gpu: bool, dtype: str) -> str | None:
    choice = model_cfg.attn_implementation
    if choice == "auto":
        if gpu and dtype in HALF and not os.environ.get("LMFORGE_NO_FLASH_ATTENTION") \
                and _installed("flash_attn"):
            return "flash_attention_2"
        return None
    if choice == "flash_attention_2":
        if not gpu:
            why = "this run is on the CPU" if gpu_present() else "none is available"
            raise ModelError(f"model.attn_implementation: flash_attention_2 needs a CUDA GPU and "
                             f"{why}", "use attn_implementation: sdpa (or auto)")
        if not _installed("flash_attn"):
            raise ModelError("model.attn_implementation: flash_attention_2 needs the package "
                             "'flash-attn', which is not installed",
                             "pip install flash-attn --no-build-isolation, or use sdpa")
    return choice


def _liger(cfg) -> bool:
    """Liger kernels for sft/pt when installed (``train.extra.use_liger_kernel`` overrides)."""
    return cfg.stage in LIGER_STAGES and _installed("liger_kernel")
