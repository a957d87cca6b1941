"""Several workers on one PostgreSQL store: no lost update, one winner per create, no deadlock;
lost connections, concurrent migrations, and the write statements' bookkeeping.

Runs when URBIS_TEST_DATABASE_URL names a PostgreSQL server with PostGIS. Workers are real OS
processes (spawned, each with its own pool) or separate pools in this process; the module
works in a database of its own, created and dropped here.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlparse

import pytest

asyncpg = pytest.importorskip("asyncpg")

from urbis.context.errors import AlreadyExists, ResourceNotFound, ServiceUnavailable  # noqa: E402
from urbis.context.geo import parse_geo_query  # noqa: E402
from urbis.context.model import LOCATION, Entity  # noqa: E402
from urbis.context.operations import create  # noqa: E402
from urbis.storage.base import Change, EntityQuery, Mutation  # noqa: E402
from urbis.storage.postgres.schema import MIGRATIONS, migrate  # noqa: E402
from urbis.storage.postgres.store import PostgresEntityStore  # noqa: E402

URL = os.environ.get("URBIS_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="URBIS_TEST_DATABASE_URL is not set")
T = TypeVar("T")
V = "https://example.org/vocab/"
NOW = "2026-01-01T00:00:00.000000Z"
TENANT = "t1"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a loop of its own (away from pytest-asyncio's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def admin(sql: str) -> None:
    """Run a statement on the server's maintenance connection."""
    conn = await asyncpg.connect(URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def database_url(name: str) -> str:
    """The URL of another database on the test server."""
    return urlparse(URL)._replace(path="/" + name).geturl()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A database of this module, migrated once, dropped at the end."""
    name = f"urbis_test_{uuid.uuid4().hex[:12]}"
    run_sync(admin(f'CREATE DATABASE "{name}"'))
    try:
        run_sync(_migrate(database_url(name)))
        yield database_url(name)
    finally:
        run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _migrate(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


def counter(entity_id: str) -> Entity:
    """An entity with a counter at 0."""
    return Entity(entity_id, [V + "Counter"], {V + "count": [{"type": "Property", "value": 0}]})


def creator(e: Entity) -> Mutation:
    """A mutation creating `e`."""
    return Mutation(e.id, lambda cur: Change(create(cur, e, NOW)))


def bump(entity_id: str, tag: str) -> Mutation:
    """A PATCH-like read-modify-write: increment the counter and add an attribute `tag`."""

    def fn(cur: Entity | None) -> Change:
        if cur is None:
            raise ResourceNotFound(entity_id)
        cur.attrs[V + "count"][0]["value"] += 1
        cur.attrs[V + tag] = [{"type": "Property", "value": tag}]
        return Change(cur)

    return Mutation(entity_id, fn)


async def _patch_worker(url: str, entity_id: str, worker: int, count: int) -> int:
    store = PostgresEntityStore(url, min_size=1, max_size=4)
    await store.open()
    try:
        batches = [[bump(entity_id, f"w{worker}_{i}")] for i in range(count)]
        results = await asyncio.gather(*(store.mutate(TENANT, b) for b in batches))
        return sum(o.error is None for [o] in results)
    finally:
        await store.close()


async def _create_worker(url: str, ids: list[str], tries: int) -> list[str]:
    store = PostgresEntityStore(url, min_size=1, max_size=4)
    await store.open()
    try:
        attempts = [store.mutate(TENANT, [creator(counter(i))]) for i in ids for _ in range(tries)]
        outcomes = [o for [o] in await asyncio.gather(*attempts)]
        bad = [o for o in outcomes if o.error is not None and not isinstance(o.error,
                                                                            AlreadyExists)]
        assert not bad, bad
        return [o.entity_id for o in outcomes if o.error is None]
    finally:
        await store.close()


def patch_worker(url: str, entity_id: str, worker: int, count: int) -> int:
    """Process entry point: `count` concurrent PATCH-like mutations; how many succeeded."""
    return asyncio.run(_patch_worker(url, entity_id, worker, count))


def create_worker(url: str, ids: list[str], tries: int) -> list[str]:
    """Process entry point: create every id `tries` times concurrently; the ids created."""
    return asyncio.run(_create_worker(url, ids, tries))


def processes(count: int) -> ProcessPoolExecutor:
    """A pool of fresh interpreters (spawned: no state shared with this one)."""
    return ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))


async def read(url: str, entity_id: str) -> Entity | None:
    """One entity, through a store of its own."""
    store = PostgresEntityStore(url, min_size=1, max_size=1)
    await store.open()
    try:
        return await store.get(TENANT, entity_id)
    finally:
        await store.close()


def test_concurrent_patches_from_two_processes_lose_no_update(url: str) -> None:
    entity_id = f"urn:ngsi-ld:Counter:{uuid.uuid4().hex[:8]}"
    store = PostgresEntityStore(url, min_size=1, max_size=1)
    run_sync(_open_and_create(store, counter(entity_id)))
    with processes(2) as pool:
        futures = [pool.submit(patch_worker, url, entity_id, w, 100) for w in range(2)]
        assert [f.result(timeout=300) for f in futures] == [100, 100]
    final = run_sync(read(url, entity_id))
    assert final is not None
    assert final.attrs[V + "count"][0]["value"] == 200
    tags = {name for name in final.attrs if name != V + "count"}
    assert tags == {f"{V}w{w}_{i}" for w in range(2) for i in range(100)}


async def _open_and_create(store: PostgresEntityStore, e: Entity) -> None:
    await store.open()
    try:
        [outcome] = await store.mutate(TENANT, [creator(e)])
        assert outcome.error is None
    finally:
        await store.close()


def test_concurrent_creates_of_one_id_have_one_winner(url: str) -> None:
    ids = [f"urn:ngsi-ld:Counter:race-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    with processes(2) as pool:
        futures = [pool.submit(create_worker, url, ids, 5) for _ in range(2)]
        created = [i for f in futures for i in f.result(timeout=300)]
    assert sorted(created) == sorted(ids)  # each id exactly once, across both processes


async def test_crossing_batches_do_not_deadlock(url: str) -> None:
    a, b = (f"urn:ngsi-ld:Counter:x-{uuid.uuid4().hex[:8]}" for _ in range(2))
    stores = [PostgresEntityStore(url, min_size=1, max_size=4) for _ in range(2)]
    for store in stores:
        await store.open()
    try:
        await stores[0].mutate(TENANT, [creator(counter(a)), creator(counter(b))])
        jobs = [stores[n % 2].mutate(TENANT, [bump(x, f"t{n}_{x[-8:]}") for x in order])
                for n in range(60) for order in ([a, b], [b, a])]
        results = await asyncio.gather(*jobs)
        assert all(o.error is None for outcomes in results for o in outcomes)
        for x in (a, b):
            e = await stores[1].get(TENANT, x)
            assert e is not None and e.attrs[V + "count"][0]["value"] == 120
    finally:
        for store in stores:
            await store.close()


async def test_a_batch_is_one_transaction(url: str) -> None:
    store = PostgresEntityStore(url, min_size=1, max_size=2)
    await store.open()
    try:
        e = counter(f"urn:ngsi-ld:Counter:tx-{uuid.uuid4().hex[:8]}")
        bad = Entity(f"{e.id}-nul", [V + "Counter"], {V + "name": [{"type": "Property",
                                                                    "value": "a\x00b"}]})
        outcomes = await store.mutate(TENANT, [creator(e), creator(bad), bump(e.id, "later")])
        assert [o.error is None for o in outcomes] == [True, False, True]
        stored = await store.get(TENANT, e.id)
        assert stored is not None and stored.attrs[V + "count"][0]["value"] == 1
        assert await store.get(TENANT, bad.id) is None
    finally:
        await store.close()


async def test_lost_connections_are_replaced(url: str) -> None:
    store = PostgresEntityStore(url, min_size=2, max_size=2)
    await store.open()
    try:
        e = counter(f"urn:ngsi-ld:Counter:lost-{uuid.uuid4().hex[:8]}")
        await store.mutate(TENANT, [creator(e)])
        name = urlparse(url).path[1:]
        for round_ in range(4):  # every pooled connection is killed: the next calls succeed
            await admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")
            if round_ % 2:
                [outcome] = await store.mutate(TENANT, [bump(e.id, f"again{round_}")])
                assert outcome.error is None
            assert await store.get(TENANT, e.id) is not None
        final = await store.get(TENANT, e.id)
        assert final is not None and final.attrs[V + "count"][0]["value"] == 2
    finally:
        await store.close()


async def test_an_unreachable_server_is_service_unavailable() -> None:
    store = PostgresEntityStore("postgresql://postgres@127.0.0.1:1/none", min_size=0, max_size=1)
    with pytest.raises(ServiceUnavailable):
        await store.open()


async def test_workers_starting_together_migrate_once() -> None:
    name = f"urbis_test_{uuid.uuid4().hex[:12]}"
    await admin(f'CREATE DATABASE "{name}"')
    try:
        versions = await asyncio.gather(*(_migrate(database_url(name)) for _ in range(6)))
        assert versions == [len(MIGRATIONS)] * 6
        conn = await asyncpg.connect(database_url(name))
        try:
            rows = await conn.fetch("SELECT version FROM urbis_schema_version ORDER BY version")
        finally:
            await conn.close()
        assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def located(entity_id: str, lon: float, lat: float) -> Entity:
    """A counter with a location."""
    e = counter(entity_id)
    e.attrs[LOCATION] = [{"type": "GeoProperty",
                          "value": {"type": "Point", "coordinates": [lon, lat]}}]
    return e


def move(entity_id: str, lon: float, lat: float) -> Mutation:
    """A mutation moving an entity."""

    def fn(cur: Entity | None) -> Change:
        assert cur is not None
        cur.attrs[LOCATION][0]["value"]["coordinates"] = [lon, lat]
        return Change(cur)

    return Mutation(entity_id, fn)


async def test_every_write_path_keeps_geo_rows_in_step(url: str) -> None:
    store = PostgresEntityStore(url, min_size=1, max_size=2)
    await store.open()
    tag = uuid.uuid4().hex[:8]
    ids = [f"urn:ngsi-ld:Counter:geo-{tag}-{i}" for i in range(4)]

    async def near(lon: float, lat: float) -> set[str]:
        geo = parse_geo_query("near;maxDistance==100", "Point", f"[{lon},{lat}]", None, str)
        result = await store.query(TENANT, EntityQuery(ids=ids, geo=geo, limit=100))
        return {e.id for e in result.entities}

    try:
        await store.mutate(TENANT, [creator(located(ids[0], 1, 1))])  # one insert
        await store.mutate(TENANT, [creator(located(i, 1, 1)) for i in ids[1:]])  # a batch
        assert await near(1, 1) == set(ids)
        await store.mutate(TENANT, [move(ids[0], 2, 2)])  # one update, geo changed
        await store.mutate(TENANT, [bump(ids[0], "x")])  # one update, geo kept
        await store.mutate(TENANT, [move(ids[1], 2, 2), bump(ids[2], "y")])  # a batch
        assert await near(1, 1) == {ids[2], ids[3]}
        assert await near(2, 2) == {ids[0], ids[1]}
        await store.mutate(TENANT, [Mutation(ids[0], lambda cur: Change(delete=True))])
        await store.mutate(TENANT, [Mutation(ids[2], lambda cur: Change(delete=True)),
                                    move(ids[3], 2, 2)])
        assert await near(1, 1) == set()
        assert await near(2, 2) == {ids[1], ids[3]}
        orphans = "SELECT count(*) FROM geo g LEFT JOIN entities e USING (pk) WHERE e.pk IS NULL"
        assert await store.db.run(lambda conn: conn.fetchval(orphans)) == 0
    finally:
        await store.close()
