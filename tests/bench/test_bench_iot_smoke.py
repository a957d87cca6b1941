"""`python -m bench.iot` works end to end (tiny sizes; figures live in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_iot_quick() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.iot", "--devices", "20", "--rate", "200", "--seconds",
         "1"], cwd=root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = dict(item.split("=") for item in proc.stdout.split())
    assert int(figures["written"]) == int(figures["published"]) > 0
    assert figures["lost"] == "0"
