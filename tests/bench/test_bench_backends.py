"""The bench on PostgreSQL (1 and 2 workers, a database of its own, dropped at the end) and the
per-backend results sections of docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The bench is a package at the repository root, not installed: import it from there (this
# folder, tests/bench, would otherwise be found as a namespace package of the same name).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if getattr(sys.modules.get("bench"), "__file__", "") is None:
    del sys.modules["bench"]

from bench import docs  # noqa: E402
from bench.backends import database_name, setups, with_database  # noqa: E402
from bench.options import options  # noqa: E402

PG_URL = os.environ.get("URBIS_TEST_DATABASE_URL", "")


def test_setups_and_options() -> None:
    assert [s.label for s in setups(["sqlite", "pg"], ["full", "normal"], [1, 2])] == [
        "sqlite-full", "sqlite-normal", "pg-1w", "pg-2w"]
    args = options(["--store", "postgresql://u@h:5/x", "--workers", "2"], "doc")
    assert [s.label for s in args.setups] == ["pg-2w"] and args.pg_url == "postgresql://u@h:5/x"
    assert [s.label for s in options(["--quick"], "doc").setups] == ["sqlite-full"]
    with pytest.raises(SystemExit):
        options(["--backends", "oracle"], "doc")
    with pytest.raises(SystemExit):
        options(["--backends", "pg", "--pg-url", "mysql://x/y"], "doc")


def test_database_names_are_fresh_and_safe() -> None:
    name = database_name("postgresql://u@h/Urbis-Bench", pid=12, now=34.5)
    assert name == "urbis_bench_12_34"
    assert with_database("postgresql://u@h:5432/a?sslmode=off", name) == (
        "postgresql://u@h:5432/urbis_bench_12_34?sslmode=off")


def _result(backend: str, column: str) -> dict[str, object]:
    run = {"backend": backend, "column": column, "title": f"{backend} {column}",
           "workers": 2 if column == "2 workers" else 1, "synchronous": "full",
           "scenarios": {}, "health_rps": 1.0, "problems": [],
           "targets": [{"title": "t", "unit": "requests/s", "goal": 1, "op": ">=",
                        "value": 2.0, "met": True, "needs_factor": None,
                        "ratio_to_health": 0.5}]}
    machine = {k: "x" for k in ("cpu", "cores", "memory_gib", "os", "python", "sqlite",
                                "store_filesystem", "wrk", "urbis", "commit")}
    machine["postgresql"] = {k: "y" for k in ("server_version", "shared_buffers",
                                              "synchronous_commit", "fsync")}
    return {"config": {"entities": 10, "duration": 1, "warmup": 0, "threads": 1,
                       "connections": 2, "latency_connections": 1},
            "started_epoch": 0, "seconds": 60, "command": f"bench {backend}",
            "machine": machine, "runs": [run]}


def test_each_backend_rewrites_only_its_own_section(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nintro\n\n## Latest results\n\n" + docs.SECTIONS["sqlite"][0]
                    + "\nold sqlite\n" + docs.SECTIONS["sqlite"][1] + "\n\n## Someone else's\n\n"
                    "kept\n")
    docs.update(_result("postgresql", "2 workers"), path)  # appended: no section yet
    docs.update(_result("sqlite", "full"), path)
    text = path.read_text()
    assert "old sqlite" not in text and "bench sqlite" in text and "bench postgresql" in text
    assert "## Someone else's\n\nkept\n" in text
    assert text.index("bench sqlite") < text.index("Someone else") < text.index(
        "## Latest results, PostgreSQL")
    docs.update(_result("postgresql", "1 worker"), path)
    again = path.read_text()
    assert again.count("## Latest results, PostgreSQL") == 1 and "| 1 worker |" in again
    assert "| 2 workers |" not in again and "bench sqlite" in again


async def _databases(url: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return {r[0] for r in await conn.fetch("SELECT datname FROM pg_database")}
    finally:
        await conn.close()


@pytest.mark.slow
@pytest.mark.skipif(not PG_URL, reason="URBIS_TEST_DATABASE_URL is not set")
def test_bench_on_postgresql(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (make bench installs it)")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.run", "--quick", "--duration", "1", "--warmup", "0",
         "--entities", "500", "--backends", "pg", "--pg-url", with_database(PG_URL, "urbis_bt"),
         "--workers", "1,2", "--results-dir", str(tmp_path), "--write-docs", "--docs",
         str(tmp_path / "benchmarks.md")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    result = json.loads((tmp_path / "latest.json").read_text())
    assert [(r["backend"], r["workers"]) for r in result["runs"]] == [
        ("postgresql", 1), ("postgresql", 2)]
    assert all(r["problems"] == [] for r in result["runs"])
    assert all("db_cpu_pct" in r["load"] for r in result["runs"])
    assert "## Latest results, PostgreSQL" in (tmp_path / "benchmarks.md").read_text()
    mine = f"urbis_bt_{proc.pid}_"  # other test sessions may run this test meanwhile
    assert not {d for d in asyncio.run(_databases(PG_URL)) if d.startswith(mine)}
