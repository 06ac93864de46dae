"""One benchmark job in a fresh process: ``python -m bench.worker SPEC.json RESULT.json``.

A fresh process per trainer keeps peak RSS figures separate and nothing (imports, caches,
patched classes, allocator state) leaks from one trainer into the next. The spec names the job
(``JOBS``); the result is the job's dict plus peak RSS, peak GPU memory and the job's wall time.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

JOBS = {
    "lmforge_lm": "bench.train_jobs:lmforge_lm",
    "trl_sft": "bench.train_jobs:trl_sft",
    "hf_trainer": "bench.train_jobs:hf_trainer",
    "eval_saved": "bench.train_jobs:eval_saved",
    "lf_sft": "bench.lf_jobs:lf_sft",
    "lmforge_dpo": "bench.dpo_jobs:lmforge_dpo",
    "trl_dpo": "bench.dpo_jobs:trl_dpo",
    "generate": "bench.other_jobs:generate",
    "preprocess": "bench.other_jobs:preprocess",
    "matmul": "bench.other_jobs:matmul",
}


def _setup(threads: int) -> None:
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false", WANDB_MODE="offline", DO_NOT_TRACK="1",
                      HF_HUB_DISABLE_TELEMETRY="1", MPLBACKEND="Agg",
                      OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    import datasets

    datasets.disable_progress_bars()


def run(spec: dict) -> dict:
    import importlib

    from bench.measure import peak_gpu_mb, peak_rss_mb

    _setup(spec.get("threads", 1))
    import torch

    torch.set_num_threads(spec.get("threads", 1))
    module, name = JOBS[spec["job"]].split(":")
    func = getattr(importlib.import_module(module), name)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-") as tmp:
        result = func(spec, Path(tmp))
    result["job_seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = peak_rss_mb()
    gpu = peak_gpu_mb()
    if gpu is not None:
        result["peak_gpu_mb"] = gpu
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = run(spec)
    except Exception as exc:  # reported in the table, the other jobs go on
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    Path(argv[1]).write_text(json.dumps(result, indent=1, default=str))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
