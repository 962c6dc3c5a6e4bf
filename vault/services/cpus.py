"""How many CPUs this process may use: the helper processes (import redaction, export workers)
are started only where a second CPU can run them."""

from __future__ import annotations

import math
import os

__all__ = ["cpus"]


def cpus() -> int:
    """How many CPUs this process may run on: its affinity, bounded by a cgroup v2 CPU quota
    (a container limited to one CPU has one, whatever the host has)."""
    affinity = getattr(os, "sched_getaffinity", None)
    count = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
    except (OSError, ValueError):
        return count
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return count
    return max(1, min(count, math.ceil(int(quota) / int(period))))
