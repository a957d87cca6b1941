"""Cache invalidations through PostgreSQL LISTEN/NOTIFY: sent on commit only, received by every
worker, and a lost LISTEN connection is re-established with every cache dropped."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlparse

import pytest

asyncpg = pytest.importorskip("asyncpg")

from urbis.storage.base import (  # noqa: E402
    CAP_INVALIDATION,
    TOPIC_ALL,
    TOPIC_CONTEXTS,
    TOPIC_TENANTS,
    StoredContext,
)
from urbis.storage.postgres import open_postgres_stores  # noqa: E402
from urbis.storage.postgres.notify import MAX_PAYLOAD, PgInvalidationChannel, announce  # noqa: E402
from urbis.storage.postgres.store import PostgresEntityStore  # noqa: E402

pytestmark = pytest.mark.skipif(not os.environ.get("URBIS_TEST_DATABASE_URL"),
                                reason="URBIS_TEST_DATABASE_URL is not set")
Heard = list[tuple[str, str | None]]


@pytest.fixture
async def channel(pg_database: str) -> AsyncIterator[tuple[PgInvalidationChannel, Heard]]:
    """A listening channel and what it has heard."""
    heard: Heard = []
    chan = PgInvalidationChannel(pg_database)
    chan.subscribe(lambda topic, key: heard.append((topic, key)))
    await chan.open()
    yield chan, heard
    await chan.close()


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `check()` is true."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_announcements_are_sent_on_commit_only(
        pg_database: str, channel: tuple[PgInvalidationChannel, Heard]) -> None:
    _, heard = channel
    conn = await asyncpg.connect(pg_database)
    try:
        tx = conn.transaction()
        await tx.start()
        await announce(conn, TOPIC_CONTEXTS, "http://x/rolled-back")
        await tx.rollback()
        async with conn.transaction():
            await announce(conn, TOPIC_CONTEXTS, "http://x/a:b")
            await asyncio.sleep(0.1)
            assert heard == []  # not before the commit
            await announce(conn, TOPIC_TENANTS, "x" * MAX_PAYLOAD)  # too long to name
    finally:
        await conn.close()
    await until(lambda: len(heard) == 2)
    assert heard == [(TOPIC_CONTEXTS, "http://x/a:b"), (TOPIC_TENANTS, None)]


async def test_a_lost_listen_connection_comes_back_and_drops_every_cache(
        pg_database: str, channel: tuple[PgInvalidationChannel, Heard]) -> None:
    chan, heard = channel
    database = urlparse(pg_database).path[1:]
    for round_ in range(2):
        conn = await asyncpg.connect(pg_database)
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = $1 AND pid <> pg_backend_pid()", database)
            await until(lambda n=round_ + 1: chan.reconnections == n)
            assert heard[-1] == (TOPIC_ALL, None)
            await announce(conn, TOPIC_CONTEXTS, f"http://x/{round_}")  # heard again
        finally:
            await conn.close()
        await until(lambda url=f"http://x/{round_}": heard[-1] == (TOPIC_CONTEXTS, url))


async def test_the_listener_survives_connections_killed_at_any_moment(
        pg_database: str, channel: tuple[PgInvalidationChannel, Heard]) -> None:
    chan, heard = channel
    database = urlparse(pg_database).path[1:]
    conn = await asyncpg.connect(pg_database)
    try:
        loop = asyncio.get_running_loop()
        end, kills = loop.time() + 2, 0
        while loop.time() < end:  # kills land during connect, LISTEN, and idle alike
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = $1 AND pid <> pg_backend_pid()", database)
            kills += 1
            await asyncio.sleep(0.001 * (kills % 7))
        async with asyncio.timeout(15):  # it may still be waiting to reconnect
            while (TOPIC_CONTEXTS, "http://x/after") not in heard:
                await announce(conn, TOPIC_CONTEXTS, "http://x/after")
                await asyncio.sleep(0.1)
        assert chan.reconnections > 0 and (TOPIC_ALL, None) in heard
    finally:
        await conn.close()


async def test_context_writes_of_one_worker_reach_the_others(pg_database: str) -> None:
    writer = await open_postgres_stores(pg_database, min_size=1, max_size=2)
    reader = await open_postgres_stores(pg_database, min_size=1, max_size=2)
    heard: Heard = []
    reader[0].invalidations.subscribe(lambda topic, key: heard.append((topic, key)))
    try:
        assert CAP_INVALIDATION in reader[0].capabilities
        ctx = StoredContext("inv-1", "http://x/inv-1", "hosted", {"@context": {}}, "2026-01-01")
        await writer[1].put_context(ctx)
        await until(lambda: (TOPIC_CONTEXTS, ctx.url) in heard)
        heard.clear()
        await writer[1].record_usage(ctx.id, 3, "2026-01-02")  # counters change no cache
        assert await writer[1].delete_context(ctx.id)
        assert not await writer[1].delete_context(ctx.id)
        await until(lambda: heard == [(TOPIC_CONTEXTS, ctx.url)])
        await asyncio.sleep(0.1)
        assert heard == [(TOPIC_CONTEXTS, ctx.url)]
    finally:
        for entities, contexts in (writer, reader):
            await contexts.close()
            await entities.close()


async def test_known_tenants_follow_invalidations(pg_database: str) -> None:
    store = PostgresEntityStore(pg_database, min_size=1, max_size=2)
    await store.open()
    try:
        store._tenants.update({"gone", "kept"})
        conn = await asyncpg.connect(pg_database)
        try:
            await announce(conn, TOPIC_TENANTS, "gone")
            await until(lambda: "gone" not in store._tenants)
            assert "kept" in store._tenants
            await announce(conn, TOPIC_ALL)
            await until(lambda: not store._tenants)
        finally:
            await conn.close()
    finally:
        await store.close()
