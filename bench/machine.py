"""What the figures were measured on: CPU, memory, file system, Python, SQLite, commit."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (else the platform's processor string)."""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total memory in GiB from /proc/meminfo."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def filesystem(path: Path) -> str:
    """The type of the file system holding `path` (ext4, tmpfs, overlay, ...)."""
    best, kind = "", "unknown"
    target = str(path.resolve())
    for line in _read("/proc/mounts").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1]
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


def git(*args: str) -> str:
    """Output of a git command in the repository ('' when git is unavailable)."""
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def commit() -> str:
    """Short commit id, with `+dirty` when src/ has uncommitted changes."""
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{head}+dirty" if git("status", "--porcelain", "--", "src") else head


def urbis_version() -> str:
    """The installed urbis version."""
    try:
        from importlib.metadata import version

        return version("urbis")
    except Exception:
        return "unknown"


def describe(store_dir: Path, wrk: str) -> dict[str, Any]:
    """Everything about the machine and software that a reader needs to compare figures."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "sqlite": sqlite3.sqlite_version,
        "store_filesystem": filesystem(store_dir),
        "urbis": urbis_version(),
        "commit": commit(),
        "wrk": wrk,
    }
