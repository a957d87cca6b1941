"""`python -m bench.notify` works end to end (tiny sizes; figures live in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_notify_quick() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.notify", "--seconds", "1", "--conns", "2", "--entities",
         "20", "--fanout", "1", "--endpoints", "http", "--sync", "normal"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(proc.stdout.splitlines()[0])
    assert figures["notifications"] > 0 and figures["lost"] == 0
