"""CPU threads for training (``train.num_threads``; decided in training/device.py): the
configured number, else ``OMP_NUM_THREADS``, else the physical cores this process may use."""

from __future__ import annotations

import os


def physical_cores() -> int:
    """Physical cores this process may use: the CPUs it is pinned to, one per core (hyper-threads
    share a core's FPUs, so more threads only add contention to dense matmuls), capped by a
    cgroup CPU quota (containers; torch's own default ignores it and oversubscribes)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in allowed:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/core_id") as a, open(f"{base}/physical_package_id") as b:
                cores.add((a.read().strip(), b.read().strip()))
        except OSError:
            cores.add((str(cpu), ""))
    quota = _cgroup_quota()
    return max(1, min(len(cores), quota) if quota else len(cores))


def _cgroup_quota(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` quota, rounded up (None: no quota)."""
    try:
        with open(path) as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, -(-int(quota) // int(period)))


def cpu_threads(requested: int | None) -> int:
    """torch threads for CPU training: the configured number (``train.num_threads``), else
    ``OMP_NUM_THREADS`` when the user set it (jobs sharing a machine), else the physical cores."""
    if requested:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return physical_cores()
