"""Who used the CPU during a measurement: the server, the database, the load generator, the rest.

The server is every process of its process group (uvicorn and its workers); the database is
every PostgreSQL process working for the bench's database (its backends, found by their
process titles, `postgres: ... <user> <database> <client> <state>`).

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


def _stat_cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int, database: str | None = None
                      ) -> tuple[float | None, dict[int, float]]:
    """(CPU seconds of process group `pgid`, {pid: CPU seconds} of the PostgreSQL processes
    working for `database`: its backends and autovacuum workers).

    The first is None when the group has no process left (or off Linux).
    """
    server: float | None = None
    db: dict[int, float] = {}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None, db
    for pid in pids:
        try:
            head, _, tail = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
            fields = tail.split()
            if int(fields[2]) == pgid:
                server = (server or 0.0) + _stat_cpu(fields)
            elif database and head.endswith("(postgres") and database in Path(
                    f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split():
                db[int(pid)] = _stat_cpu(fields)
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
    return server, db


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
    db: dict[int, float] | None = None

    @classmethod
    def take(cls, server_pid: int, database: str | None = None) -> Sample:
        """Read every counter now; the server's is its whole process group (its workers)."""
        server, db = group_cpu_seconds(server_pid, database)
        if server is None:
            server = process_cpu_seconds(server_pid)
        return cls(time.perf_counter(), server, machine_jiffies(), _own_cpu_seconds(),
                   db if database else None)


def usage(before: Sample, after: Sample) -> dict[str, Any]:
    """CPU shares between two samples, in % of one core (machine_busy_pct: % of all cores)."""
    elapsed = after.at - before.at
    if elapsed <= 0:
        return {}
    out: dict[str, Any] = {"loadgen_cpu_pct": round(100 * (after.loadgen - before.loadgen)
                                                    / elapsed)}
    if before.server is not None and after.server is not None:
        out["server_cpu_pct"] = round(100 * (after.server - before.server) / elapsed)
    if before.db is not None and after.db is not None:
        # per process: one that ended meanwhile (an autovacuum worker) takes its CPU with it
        used = sum(cpu - before.db.get(pid, 0.0) for pid, cpu in after.db.items())
        out["db_cpu_pct"] = round(100 * used / elapsed)
    if before.machine is not None and after.machine is not None:
        busy = after.machine[0] - before.machine[0]
        total = after.machine[1] - before.machine[1]
        if total > 0:
            cores = os.cpu_count() or 1
            out["machine_busy_pct"] = round(100 * busy / total)
            used = 100 * cores * busy / total
            others = (used - out.get("server_cpu_pct", 0) - out.get("db_cpu_pct", 0)
                      - out["loadgen_cpu_pct"])
            out["other_cpu_pct"] = max(0, round(others))
    out["others_busy"] = out.get("other_cpu_pct", 0) > OTHERS_BUSY_PCT
    return out
