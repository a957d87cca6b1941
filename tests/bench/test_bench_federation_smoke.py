"""`python -m bench.federation` works end to end (tiny sizes; figures in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_federation_quick() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.federation", "--entities", "40", "--limit", "20",
         "--seconds", "0.5", "--connections", "1", "--rounds", "1"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["connections"] == 1 and summary["city_mean_ms"] > 0
