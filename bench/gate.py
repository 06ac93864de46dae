"""The CPU gate before every benchmark job: wait until other processes use less than half a core.

The runner is idle while it waits, so every busy jiffy in ``/proc/stat`` over the sampling window
belongs to other processes. A job starts as soon as one window shows them below the threshold;
after ``timeout`` seconds it starts anyway and the result carries a warning with the load it saw,
so a figure taken on a busy machine says so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

THRESHOLD = 0.5  # cores used by other processes


def _jiffies(stat: Path) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from the first line of /proc/stat."""
    fields = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def busy_cores(window: float = 1.0, stat: Path = Path("/proc/stat"),
               cpus: int | None = None, sleep: Callable[[float], None] = time.sleep) -> float:
    """Cores busy over the next ``window`` seconds (all processes; the caller sleeps meanwhile).
    ``nan`` where /proc/stat cannot be read (not Linux): the gate then lets jobs through."""
    try:
        b0, t0 = _jiffies(stat)
        sleep(window)
        b1, t1 = _jiffies(stat)
    except (OSError, ValueError):
        return float("nan")
    n = cpus or os.cpu_count() or 1
    return n * (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


def wait_until_idle(read: Callable[[], float] = busy_cores, threshold: float = THRESHOLD,
                    timeout: float = 120.0, clock: Callable[[], float] = time.monotonic) -> dict:
    """Sample ``read()`` (cores used by others over one window) until it is below ``threshold``
    or ``timeout`` seconds have passed. Returns what the job's result records: the seconds
    waited, the last and the lowest load seen, and ``warning`` when the gate gave up."""
    start = clock()
    seen: list[float] = []
    while True:
        load = read()
        if load != load:  # nan: nothing to measure on this system
            return {"waited_s": clock() - start, "busy_cores": None,
                    "warning": "CPU load unknown (no /proc/stat): not gated"}
        seen.append(load)
        waited = clock() - start
        if load < threshold:
            return {"waited_s": waited, "busy_cores": load}
        if waited >= timeout:
            return {"waited_s": waited, "busy_cores": load, "min_busy_cores": min(seen),
                    "warning": f"other processes used {load:.2f} cores (at least "
                               f"{min(seen):.2f}) after {waited:.0f} s of waiting for < "
                               f"{threshold} core: measured on a busy machine"}
