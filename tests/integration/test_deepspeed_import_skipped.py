"""A run without DeepSpeed does not import ``deepspeed`` (training/compat.py:
``deepspeed_import_skipped``): accelerate imports it to unwrap every model whenever the package is
installed, ~117 MiB of RSS and ~1.2 s for an isinstance check such a run can never match. Fresh
interpreters, because any earlier test in this process may have imported it already."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, write_jsonl

pytest.importorskip("deepspeed")


def _python(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_accelerate_still_imports_deepspeed_to_unwrap_a_model_without_the_override():
    # the reason for the override: if accelerate stops doing this, drop it from compat.py
    got = _python("""
        import json, sys, torch
        from accelerate.utils.other import extract_model_from_parallel
        extract_model_from_parallel(torch.nn.Linear(2, 2))
        print(json.dumps({"imported": "deepspeed" in sys.modules}))
    """)
    assert got["imported"] is True


def test_the_override_skips_the_import_and_is_undone_after():
    got = _python("""
        import json, sys, torch
        import accelerate.utils.other as other
        from lmforge.training.compat import deepspeed_import_skipped
        before = other.is_deepspeed_available
        with deepspeed_import_skipped(False):
            other.extract_model_from_parallel(torch.nn.Linear(2, 2))
            inside = "deepspeed" in sys.modules
        restored = other.is_deepspeed_available is before
        with deepspeed_import_skipped(True):  # a DeepSpeed run keeps accelerate's check
            kept = other.is_deepspeed_available is before
        print(json.dumps({"inside": inside, "restored": restored, "kept": kept}))
    """)
    assert got == {"inside": False, "restored": True, "kept": True}


def test_a_tiny_sft_run_without_deepspeed_never_imports_it(tmp_path, tiny_model_dir):
    data = write_jsonl(tmp_path / "train.jsonl",
                       [{"instruction": f"say {i}", "output": f"{i}"} for i in range(8)])
    cfg = {"stage": "sft", "model": {"path": str(tiny_model_dir)},
           "adapter": {"type": "lora", "r": 4, "alpha": 8, "target_modules": "all-linear"},
           "data": {"train": str(data), "format": "alpaca", "max_length": 64},
           "train": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 4,
                     "report_to": ["none"], "precision": "fp32"}}
    got = _python(f"""
        import json, sys
        from lmforge import stages
        from lmforge.config import validate
        stages.run(validate({cfg!r}))
        print(json.dumps({{"imported": "deepspeed" in sys.modules}}))
    """)
    assert got["imported"] is False
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()
