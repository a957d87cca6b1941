"""The PATCH part of `python -m bench.temporal`: what history costs a single-attribute PATCH.

`patch_ratio` runs bench.run's `patch_attr` wrk scenario with history off and on, alternately;
`cpu_in_process` measures the CPU time per PATCH through the ASGI app in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.temporal import START, STEP_US, TARGET_RATIO, pg_database
from urbis.api.app import create_app
from urbis.broker.container import build_broker
from urbis.context.temporal import from_micros, to_micros
from urbis.settings import load_settings


def patch_run(backend: str, history: bool, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """One bench.run patch_attr measurement; its req/s and ratio to /health."""
    out = tmp / f"{backend}-{'on' if history else 'off'}-{time.monotonic_ns()}"
    store = ["--backends", "sqlite", "--sync", "full"] if backend == "sqlite" else \
        ["--backends", "pg", "--workers", "1", "--pg-url", args.pg_url]
    command = [sys.executable, "-m", "bench.run", "--scenarios", "patch_attr", *store,
               "--entities", str(args.patch_entities), "--duration", str(args.patch_duration),
               "--warmup", "1", "--results-dir", str(out)]
    env = {**os.environ, "URBIS_HISTORY": "on" if history else "off"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench.run failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    [run] = json.loads((out / "latest.json").read_text())["runs"]
    patch = run["scenarios"]["patch_attr"]
    server, db = patch.get("server_cpu_pct"), patch.get("db_cpu_pct")
    cpu = (server or 0) + (db or 0)  # urbis and, on PostgreSQL, the database server
    return {"requests_per_s": patch["requests_per_s"], "ratio_to_health":
            patch.get("ratio_to_health"), "p95_ms": patch["latency_ms"]["p95"],
            "server_cpu_pct": server, "db_cpu_pct": db,
            "others_cpu_pct": patch.get("other_cpu_pct"),
            "cpu_ms_per_request": round(cpu / 100 / patch["requests_per_s"] * 1000, 4)
            if cpu else None}


def patch_ratio(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """History on / off throughput, alternated `patch_rounds` times.

    The figure is the ratio of the medians of each run's throughput divided by its paired
    /health throughput (bench.run measures /health just before), which cancels most of what
    other processes on a shared machine do; the ratio of raw medians is given too.
    """
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="urbis-temporal-patch-") as tmp:
        for _ in range(args.patch_rounds):
            for history in (False, True):
                run = patch_run(backend, history, args, Path(tmp))
                runs["on" if history else "off"].append(run)
                print(f"bench.temporal: {backend}: PATCH history "
                      f"{'on ' if history else 'off'}: {run['requests_per_s']:,.0f} req/s, "
                      f"x /health {run['ratio_to_health']}", flush=True)

    def median(key: str, side: str) -> float:
        return float(statistics.median(r[key] for r in runs[side] if r[key] is not None))

    ratio = round(median("ratio_to_health", "on") / median("ratio_to_health", "off"), 3)
    raw = round(median("requests_per_s", "on") / median("requests_per_s", "off"), 3)
    cpu = round(median("cpu_ms_per_request", "off") / median("cpu_ms_per_request", "on"), 3)
    print(f"bench.temporal: {backend}: PATCH history on/off = {ratio} (normalised by /health;"
          f" raw {raw}; CPU per request off/on {cpu}; target >= {TARGET_RATIO})",
          flush=True)
    return {"history_on": runs["on"], "history_off": runs["off"], "ratio": ratio,
            "raw_ratio": raw, "cpu_ratio": cpu, "met": ratio >= TARGET_RATIO}


async def _patch_client(url: str, history: bool, entities: int
                        ) -> tuple[Any, httpx.AsyncClient]:
    settings = load_settings(env={}, store=url, sqlite_synchronous="full", history=history,
                             auth=False)
    broker = await build_broker(settings)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(settings, broker)),
                               base_url="http://bench")
    for start in range(0, entities, 100):
        body = [{"id": f"urn:ngsi-ld:Sensor:{n}", "type": "Sensor",
                 "level": {"type": "Property", "value": n},
                 "status": {"type": "Property", "value": "ok"},
                 "name": {"type": "Property", "value": f"sensor {n}"}}
                for n in range(start, min(entities, start + 100))]
        response = await client.post("/ngsi-ld/v1/entityOperations/upsert", json=body)
        assert response.status_code in (201, 204), response.text
    return broker, client


async def _patches(client: httpx.AsyncClient, entities: int, count: int, seed: int,
                   broker: Any = None) -> float:
    """CPU seconds of this process (every thread) for `count` PATCHes, 32 at a time, and for
    writing what they journaled into the history (which the store may do in the background)."""

    async def worker(k: int) -> None:
        for j in range(count // 32):
            n = (seed * 7919 + k * 104729 + j * 31) % entities
            response = await client.patch(
                f"/ngsi-ld/v1/entities/urn:ngsi-ld:Sensor:{n}/attrs/level",
                json={"value": j, "observedAt": from_micros(to_micros(START) + j * STEP_US)})
            assert response.status_code == 204, response.text

    begun = time.process_time()
    await asyncio.gather(*(worker(k) for k in range(32)))
    if broker is not None and broker.stores.temporal is not None:
        while await broker.stores.temporal.settle():
            pass
    return time.process_time() - begun


async def cpu_in_process(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """CPU per PATCH with history on and off, through the ASGI app, alternated in one process.

    CPU time (not wall time) is what other processes on a shared machine disturb least;
    on PostgreSQL it leaves out the database server's own work.
    """
    entities, count = args.patch_entities, 32 * 60
    async with _store_url(backend, args) as off_url, _store_url(backend, args) as on_url:
        off = await _patch_client(off_url, False, entities)
        on = await _patch_client(on_url, True, entities)
        try:
            cpu: dict[str, list[float]] = {"off": [], "on": []}
            for r in range(args.patch_rounds * 2 + 1):
                cpu["off"].append(await _patches(off[1], entities, count, r, off[0]) / count)
                cpu["on"].append(await _patches(on[1], entities, count, r, on[0]) / count)
        finally:
            for broker, client in (off, on):
                await client.aclose()
                await broker.close()
    off_us = statistics.median(cpu["off"]) * 1e6
    on_us = statistics.median(cpu["on"]) * 1e6
    ratio = round(off_us / on_us, 3)
    print(f"bench.temporal: {backend}: in-process CPU per PATCH off {off_us:.0f} us, on "
          f"{on_us:.0f} us: ratio {ratio}", flush=True)
    return {"off_cpu_us": round(off_us), "on_cpu_us": round(on_us), "ratio": ratio,
            "patches_per_round": count, "rounds": len(cpu["on"])}


@asynccontextmanager
async def _store_url(backend: str, args: argparse.Namespace) -> AsyncIterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="urbis-temporal-cpu-") as tmp:
            yield f"sqlite:///{tmp}/urbis.db"
    else:
        async with pg_database(args.pg_url) as url:
            yield url
