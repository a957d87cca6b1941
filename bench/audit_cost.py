"""What the audit log costs a single-attribute PATCH: `python -m bench.audit_cost`.

Two brokers on fresh stores of one backend, one with `audit` on and one off, in one process;
rounds of concurrent single-attribute PATCHes (EntityService.patch_attr, what
PATCH /entities/{id}/attrs/{attr} calls) alternate between them so that whatever else the
machine does weighs on both alike. Prints PATCHes per second and process CPU per PATCH
(every thread: the SQLite writer included) for each, and their ratios (median of rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from typing import Any

import asyncpg

from urbis.broker.container import Broker, build_broker
from urbis.context.actor import Actor
from urbis.settings import load_settings

ACTOR = Actor(principal="bench")
ENTITIES = 1000


async def _pg_database(url: str) -> str:
    name = f"urbis_audit_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.rsplit("/", 1)[0] + "/" + name


async def _drop(url: str, database: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


async def _broker(store: str, audit: bool, sync: str) -> Broker:
    settings = replace(load_settings(env={}, store=store, sqlite_synchronous=sync),
                       audit=audit, history=False).validate()
    broker = await build_broker(settings)
    tm = await broker.contexts.term_map(None)
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> None:
        async with sem:
            await broker.entities.create(ACTOR, {"id": f"urn:ngsi-ld:Car:{i}", "type": "Car",
                                                 "speed": {"type": "Property", "value": 0}}, tm)

    await asyncio.gather(*(create(i) for i in range(ENTITIES)))
    return broker


async def _round(broker: Broker, tm: Any, count: int, concurrency: int, start: int
                 ) -> tuple[float, float]:
    """(seconds, CPU seconds) of `count` PATCHes, `concurrency` at a time."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await broker.entities.patch_attr(ACTOR, f"urn:ngsi-ld:Car:{i % ENTITIES}", "speed",
                                             {"value": start + i}, tm)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - wall, time.process_time() - cpu


async def main(args: argparse.Namespace) -> None:
    """Measure and print."""
    created: list[str] = []
    if args.store == "sqlite":
        tmp = tempfile.mkdtemp(prefix="urbis-audit-bench-")
        stores = [f"sqlite:///{tmp}/on.db", f"sqlite:///{tmp}/off.db"]
    else:
        stores = [await _pg_database(args.store), await _pg_database(args.store)]
        created = [s.rsplit("/", 1)[1] for s in stores]
    on = await _broker(stores[0], True, args.sync)
    off = await _broker(stores[1], False, args.sync)
    try:
        tm = await on.contexts.term_map(None)
        results: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
        for r in range(args.rounds):
            for name, broker in (("on", on), ("off", off)) if r % 2 else (("off", off),
                                                                           ("on", on)):
                results[name].append(await _round(broker, tm, args.count, args.concurrency,
                                                  r * args.count))
        _report(args, results)
    finally:
        await on.close()
        await off.close()
        for database in created:
            await _drop(args.store, database)


def _report(args: argparse.Namespace, results: dict[str, list[tuple[float, float]]]) -> None:
    rate = {k: statistics.median(args.count / w for w, _ in v) for k, v in results.items()}
    cpu = {k: statistics.median(c / args.count * 1e6 for _, c in v) for k, v in results.items()}
    print(f"backend {args.store.split(':')[0]}, {args.rounds} rounds of {args.count} PATCHes, "
          f"{args.concurrency} at a time (medians)")
    for k in ("off", "on"):
        print(f"  audit {k:<3}  {rate[k]:8.0f} PATCH/s  {cpu[k]:7.0f} µs CPU/PATCH")
    print(f"  audit on / off: throughput x{rate['on'] / rate['off']:.3f}, "
          f"CPU per PATCH x{cpu['on'] / cpu['off']:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default="sqlite", help="sqlite, or a postgresql:// server URL")
    parser.add_argument("--sync", default="full", help="SQLite synchronous mode (full)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    asyncio.run(main(parser.parse_args()))
