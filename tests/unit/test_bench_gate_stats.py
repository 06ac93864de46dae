"""The benchmark's CPU gate (bench/gate.py) with a fake load reader and clock, its /proc/stat
arithmetic, and the folding of repeated runs into median and spread (bench/stats.py)."""

from __future__ import annotations

import math

import pytest

from bench.gate import busy_cores, wait_until_idle
from bench.stats import aggregate, median_spread


class FakeClock:
    """Each load reading takes one second, as the real one does."""

    def __init__(self, loads):
        self.loads, self.now = list(loads), 0.0

    def read(self) -> float:
        self.now += 1.0
        return self.loads.pop(0) if len(self.loads) > 1 else self.loads[0]

    def clock(self) -> float:
        return self.now


def test_gate_waits_until_other_processes_use_under_half_a_core():
    fake = FakeClock([1.7, 0.9, 0.3, 0.1])
    g = wait_until_idle(fake.read, threshold=0.5, timeout=60, clock=fake.clock)
    assert g == {"waited_s": 3.0, "busy_cores": 0.3}
    assert fake.loads == [0.1]  # it stopped at the first quiet window


def test_gate_gives_up_after_the_timeout_with_a_warning():
    fake = FakeClock([1.2, 0.8, 1.5])
    g = wait_until_idle(fake.read, threshold=0.5, timeout=4, clock=fake.clock)
    assert g["waited_s"] == 4.0 and g["busy_cores"] == 1.5 and g["min_busy_cores"] == 0.8
    assert "busy machine" in g["warning"] and "0.80" in g["warning"]


def test_gate_without_proc_stat_lets_the_job_through_and_says_so():
    g = wait_until_idle(lambda: math.nan, clock=lambda: 0.0)
    assert g["busy_cores"] is None and "not gated" in g["warning"]


def test_busy_cores_from_two_proc_stat_samples(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n")

    def sleep(_):  # 300 jiffies pass: 150 busy (user 120, system 30), 150 idle
        stat.write_text("cpu  220 0 80 950 50 0 0 0 0 0\n")

    assert busy_cores(1.0, stat, cpus=2, sleep=sleep) == pytest.approx(2 * 150 / 300)
    assert math.isnan(busy_cores(0.0, tmp_path / "missing"))


def test_median_and_spread():
    assert median_spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert median_spread([4, 1, 2, 3])["median"] == 2.5
    with pytest.raises(ValueError):
        median_spread([])


def test_aggregate_repeated_runs():
    runs = [{"tps": 100.0, "steps": 5, "precision": "fp32", "gate": {"busy_cores": 0.1}},
            {"error": "worker exited with 1"},
            {"tps": 120.0, "steps": 5, "precision": "fp32",
             "gate": {"busy_cores": 1.2, "warning": "busy"}},
            {"tps": 90.0, "steps": 5, "precision": "fp32", "gate": {"busy_cores": 0.2}}]
    r = aggregate(runs)
    assert r["tps"] == 100.0 and r["spread"]["tps"] == [90.0, 120.0, 3]
    assert r["steps"] == 5 and r["precision"] == "fp32"
    assert r["failed_runs"] == 1 and r["run_errors"] == ["worker exited with 1"]
    assert r["gate_warnings"] == ["busy"] and r["runs"] is runs
    failed = aggregate([{"error": "boom"}])
    assert failed["error"] == "boom"
