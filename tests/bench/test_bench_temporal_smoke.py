"""`python -m bench.temporal` works end to end (tiny sizes, aggregation only, SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_temporal_quick(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "temporal.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.temporal", "--quick", "--skip-patch", "--backends",
         "sqlite", "--out", str(out)],
        cwd=root, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads(out.read_text())["stores"]["sqlite"]["aggregation"]
    assert figures["instances"] == 10_000
    assert figures["buckets_per_entity"] >= 1 and figures["p95_ms"] > 0
