"""Temporal API benchmark: `python -m bench.temporal [--backends sqlite,pg] [--quick]`.

(a) Aggregation: loads ENTITIES x INSTANCES attribute instances (100 x 10,000: one million)
    straight into each store's TemporalStore (bulk, not one HTTP request each), then times
    `GET /ngsi-ld/v1/temporal/entities?type=...&format=aggregatedValues&aggrMethods=avg,max
    &aggrPeriodDuration=P1D` over all of them through the ASGI app in this process; p50/p95.
(b) History cost: runs bench.run's `patch_attr` wrk scenario with history on and with
    `URBIS_HISTORY=off`, alternately, and reports the ratio of their throughputs (each also
    normalised by its own paired /health run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.backends import DEFAULT_PG_URL
from urbis.api.app import create_app
from urbis.broker.container import build_broker
from urbis.context.model import Entity
from urbis.context.temporal import from_micros, to_micros
from urbis.context.temporal_records import Record
from urbis.settings import load_settings
from urbis.storage.registry import open_stores

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
START = "2026-01-01T00:00:00Z"
STEP_US = 60_000_000  # one instance a minute: 10,000 instances span about 7 days
QUERY = ("/ngsi-ld/v1/temporal/entities?type=WeatherObserved&attrs=temperature"
         "&format=aggregatedValues&aggrMethods=avg,max&aggrPeriodDuration=P1D&limit={limit}")
# The same over instances (not rollups): a `timeAt` that is not a whole hour.
QUERY_RAW = QUERY + "&timerel=after&timeAt=2025-12-31T23:59:59Z"
TARGET_P95_MS = 200.0
TARGET_RATIO = 0.8


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Options (also URBIS_BENCH_PG_URL for the PostgreSQL server)."""
    p = argparse.ArgumentParser(prog="python -m bench.temporal", description=__doc__)
    p.add_argument("--backends", default="sqlite,pg", help="sqlite, pg or both (sqlite,pg)")
    p.add_argument("--pg-url", default=os.environ.get("URBIS_BENCH_PG_URL", DEFAULT_PG_URL),
                   help="PostgreSQL server; a database of this run is created and dropped")
    p.add_argument("--entities", type=int, default=100)
    p.add_argument("--instances", type=int, default=10_000, help="per entity")
    p.add_argument("--queries", type=int, default=30, help="timed queries per store")
    p.add_argument("--patch-entities", type=int, default=10_000)
    p.add_argument("--patch-duration", type=float, default=8.0, help="seconds per wrk run")
    p.add_argument("--patch-rounds", type=int, default=3, help="on/off pairs per store")
    p.add_argument("--skip-patch", action="store_true", help="only the aggregation query")
    p.add_argument("--skip-query", action="store_true", help="only the PATCH ratio")
    p.add_argument("--skip-wrk", action="store_true",
                   help="PATCH cost measured in this process only (no wrk runs)")
    p.add_argument("--quick", action="store_true",
                   help="10 x 1,000 instances, 5 queries, 2 s PATCH runs, one round")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.entities, args.instances, args.queries = 10, 1000, 5
        args.patch_entities, args.patch_duration, args.patch_rounds = 500, 2.0, 1
    args.backend_list = [b.strip() for b in args.backends.split(",") if b.strip()]
    return args


@asynccontextmanager
async def pg_database(url: str) -> AsyncIterator[str]:
    """A fresh database on the server of `url`, dropped at the end."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    name = f"{parsed.path.lstrip('/') or 'urbis_bench'}_t{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = parsed._replace(path="/postgres").geturl()
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield parsed._replace(path="/" + name).geturl()
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def records(n: int, instances: int, start: int) -> list[Record]:
    """One sensor's temperature readings, a minute apart."""
    out = []
    for i in range(instances):
        at = start + i * STEP_US
        value = round(15 + 10 * ((i * 7919 + n * 104729) % 1000) / 1000, 2)
        out.append(Record(VOCAB + "temperature", {"type": "Property", "value": value,
                                                  "observedAt": from_micros(at)},
                          None, at, at))
    return out


async def load(url: str, entities: int, instances: int) -> float:
    """Bulk-load the instances through the TemporalStore; seconds taken."""
    stores = await open_stores(url, synchronous="normal")
    assert stores.temporal is not None
    start, begun = to_micros(START), time.perf_counter()
    try:
        for n in range(entities):
            entity = Entity(f"urn:ngsi-ld:WeatherObserved:{n:04d}", [VOCAB + "WeatherObserved"])
            for chunk in range(0, instances, 5000):
                recs = records(n, instances, start)[chunk:chunk + 5000]
                await stores.temporal.add("urbis", entity, recs, START)
        if url.startswith("postgres"):
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("VACUUM ANALYZE temporal_instances")
            finally:
                await conn.close()
    finally:
        await stores.close()
    return time.perf_counter() - begun


async def time_queries(url: str, entities: int, count: int) -> dict[str, Any]:
    """p50 / p95 of the aggregation query through the ASGI app (in this process); the same
    query answered from the instances instead of the rollups is timed too."""
    settings = load_settings(env={}, store=url, sqlite_synchronous="normal",
                             max_limit=max(1000, entities), history_retention="P100Y",
                             auth=False)
    broker = await build_broker(settings)
    app = create_app(settings, broker=broker)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://bench") as client:
            result = await _timed(client, QUERY.format(limit=entities), entities, count)
            result["met"] = result["p95_ms"] <= TARGET_P95_MS
            result["from_instances"] = await _timed(
                client, QUERY_RAW.format(limit=entities), entities, max(3, count // 3))
    finally:
        await broker.close()
    return result


async def _timed(client: httpx.AsyncClient, path: str, entities: int, count: int
                 ) -> dict[str, Any]:
    headers = {"NGSILD-Tenant": "urbis"}
    first = await client.get(path, headers=headers)  # warm caches and plans
    if first.status_code != 200 or len(first.json()) != entities:
        raise RuntimeError(f"query failed: {first.status_code} {first.text[:300]}")
    buckets = len(first.json()[0]["temperature"]["avg"])
    times: list[float] = []
    for _ in range(count):
        begun = time.perf_counter()
        response = await client.get(path, headers=headers)
        times.append((time.perf_counter() - begun) * 1000)
        assert response.status_code == 200
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {"queries": count, "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(p95, 1), "max_ms": round(times[-1], 1),
            "buckets_per_entity": buckets, "query": path}


async def aggregation(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Load and query one store."""
    total = args.entities * args.instances
    print(f"bench.temporal: {backend}: loading {total:,} instances", flush=True)
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="urbis-temporal-") as tmp:
            url = f"sqlite:///{tmp}/urbis.db"
            seconds = await load(url, args.entities, args.instances)
            result = await time_queries(url, args.entities, args.queries)
    else:
        async with pg_database(args.pg_url) as url:
            seconds = await load(url, args.entities, args.instances)
            result = await time_queries(url, args.entities, args.queries)
    result.update(instances=total, load_seconds=round(seconds, 1),
                  load_instances_per_s=round(total / seconds))
    raw = result["from_instances"]
    print(f"bench.temporal: {backend}: aggregation p50 {result['p50_ms']} ms, "
          f"p95 {result['p95_ms']} ms (target <= {TARGET_P95_MS:g} ms); from the instances "
          f"p50 {raw['p50_ms']} ms, p95 {raw['p95_ms']} ms", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when every measurement ran (targets are reported, not enforced)."""
    args = parse_args(argv)
    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "command": " ".join(["python -m bench.temporal", *sys.argv[1:]]),
                              "loadavg": os.getloadavg(), "stores": {}}
    for backend in args.backend_list:
        figures: dict[str, Any] = {}
        if not args.skip_query:
            figures["aggregation"] = asyncio.run(aggregation(backend, args))
        if not args.skip_patch:
            from bench.temporal_patch import cpu_in_process, patch_ratio

            figures["patch_cpu_in_process"] = asyncio.run(cpu_in_process(backend, args))
            if not args.skip_wrk:
                figures["patch"] = patch_ratio(backend, args)
        result["stores"][backend] = figures
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
