"""wrk as the load generator: installed if missing, run with a Lua script, results parsed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent / "wrk"
MARKER = "BENCH_RESULT "


class WrkError(RuntimeError):
    """wrk is missing or did not produce a result."""


def ensure_wrk() -> str:
    """The path of wrk; installs the Debian package when running as root, else explains."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: wrk not found, installing it: apt-get install -y wrk", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
            subprocess.run(install, env=env, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkError("the benchmark needs wrk (https://github.com/wg/wrk) with Lua support; "
                   "install it with `sudo apt-get install wrk` (Debian/Ubuntu) or "
                   "`brew install wrk` (macOS), then run the benchmark again")


def wrk_version(wrk: str) -> str:
    """wrk's version line."""
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    lines = (out.stdout or out.stderr).splitlines()
    return lines[0].split(" Copyright")[0].strip() if lines else "unknown"


@dataclass(frozen=True)
class WrkRun:
    """One wrk invocation."""

    script: str
    url: str
    duration: float
    threads: int
    connections: int
    args: tuple[str, ...] = ()
    timeout_s: int = 10

    def command(self, wrk: str = "wrk") -> list[str]:
        """The wrk command line."""
        cmd = [wrk, f"-t{self.threads}", f"-c{self.connections}",
               f"-d{max(1, round(self.duration))}s", f"--timeout={self.timeout_s}s",
               "-s", str(SCRIPTS / self.script), self.url]
        return [*cmd, "--", *self.args] if self.args else cmd


def run_wrk(wrk: str, run: WrkRun) -> dict[str, Any]:
    """Run wrk and return requests/s, latency percentiles (ms) and error counts."""
    proc = subprocess.run(run.command(wrk), capture_output=True, text=True, check=False,
                          timeout=run.duration + 60)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARKER)), None)
    if proc.returncode != 0 or line is None:
        raise WrkError(f"wrk failed (exit {proc.returncode}): {' '.join(run.command(wrk))}\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    raw = json.loads(line[len(MARKER):])
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "requests_per_s": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "errors": raw["errors"],
        "error_count": sum(raw["errors"].values()),
        "latency_ms": {
            **{f"p{_label(k)}": round(v / 1000, 3) for k, v in lat.items()
               if k not in ("min", "max", "mean", "stdev")},
            "min": round(lat["min"] / 1000, 3),
            "max": round(lat["max"] / 1000, 3),
            "mean": round(lat["mean"] / 1000, 3),
            "stdev": round(lat["stdev"] / 1000, 3),
        },
        "threads": run.threads,
        "connections": run.connections,
    }


def _label(percentile: str) -> str:
    return percentile.replace(".", "_")
