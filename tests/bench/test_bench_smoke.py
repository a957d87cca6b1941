"""`make bench` works end to end (tiny sizes; the figures themselves live in docs/benchmarks.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_bench_quick(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (make bench installs it)")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--duration", "1", "--warmup", "0",
         "--entities", "500", "--sync", "normal", "--results-dir", str(tmp_path)],
        cwd=root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "latest.json").read_text())
    assert all(run["problems"] == [] for run in result["runs"])
