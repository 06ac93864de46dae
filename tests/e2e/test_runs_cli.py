"""``lmforge runs DIR``: a table of the runs under DIR, or JSON with --json."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.unit.test_tracking_units import _run_dir


def test_runs_lists_table_and_json(tmp_path):
    _run_dir(tmp_path, "first", {"train_loss": 2.25, "eval_loss": 2.5, "global_step": 10})
    _run_dir(tmp_path, "second", {"train_loss": 1.75, "eval_loss": 1.5, "global_step": 20})
    proc = run_cli("runs", str(tmp_path), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {r["run"]: r for r in json.loads(proc.stdout)}
    assert rows["second"]["eval_loss"] == 1.5 and rows["first"]["global_step"] == 10
    table = run_cli("runs", str(tmp_path), "--sort", "eval_loss", timeout=120)
    assert table.returncode == 0, table.stderr
    lines = [line for line in table.stdout.splitlines() if "first" in line or "second" in line]
    assert "second" in lines[0] and "1.5" in lines[0] and "2.5" in lines[1]
    missing = run_cli("runs", str(tmp_path / "nope"), timeout=120)
    assert missing.returncode == 2 and "not a directory" in missing.stderr
