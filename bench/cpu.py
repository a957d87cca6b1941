"""Who used the CPU during a measurement: the server, the load generator, everything else.

On a shared machine the figures are only meaningful when the server got its CPU; a
measurement during which other processes used a good share of it is flagged (others_busy).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Other processes using more than this share of one core may have slowed a measurement.
OTHERS_BUSY_PCT = 25


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process and all its threads (None off Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_jiffies() -> tuple[float, float] | None:
    """(busy, total) CPU jiffies of the whole machine since boot, from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    values = [int(v) for v in first[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


def _own_cpu_seconds() -> float:
    """CPU of this process and of its waited-for children (wrk)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class Sample:
    """CPU counters at one instant."""

    at: float
    server: float | None
    machine: tuple[float, float] | None
    loadgen: float

    @classmethod
    def take(cls, server_pid: int) -> Sample:
        """Read every counter now."""
        return cls(time.perf_counter(), process_cpu_seconds(server_pid), machine_jiffies(),
                   _own_cpu_seconds())


def usage(before: Sample, after: Sample) -> dict[str, Any]:
    """CPU shares between two samples, in % of one core (machine_busy_pct: % of all cores)."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        return {}
    out: dict[str, Any] = {"loadgen_cpu_pct": round(100 * (after.loadgen - before.loadgen)
                                                    / elapsed)}
    if before.server is not None and after.server is not None:
        out["server_cpu_pct"] = round(100 * (after.server - before.server) / elapsed)
    if before.machine is not None and after.machine is not None:
        busy = after.machine[0] - before.machine[0]
        total = after.machine[1] - before.machine[1]
        if total > 0:
            cores = os.cpu_count() or 1
            out["machine_busy_pct"] = round(100 * busy / total)
            used = 100 * cores * busy / total
            others = used - out.get("server_cpu_pct", 0) - out["loadgen_cpu_pct"]
            out["other_cpu_pct"] = max(0, round(others))
    out["others_busy"] = out.get("other_cpu_pct", 0) > OTHERS_BUSY_PCT
    return out
