"""One-entity batches on PostgreSQL (urbis.storage.postgres.single): two round trips, yet no
lost update, journals committed in the same statement, and a conflict rolls everything back.

Runs when URBIS_TEST_DATABASE_URL names a PostgreSQL server with PostGIS, in a database of
this module.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

asyncpg = pytest.importorskip("asyncpg")

from test_pg_concurrency import (  # noqa: E402
    TENANT,
    V,
    admin,
    bump,
    counter,
    creator,
    database_url,
    run_sync,
)
from test_pg_concurrency import _migrate as migrate_url  # noqa: E402

from urbis.context.errors import AlreadyExists  # noqa: E402
from urbis.context.model import Entity  # noqa: E402
from urbis.storage.base import Applied, Change, Mutation  # noqa: E402
from urbis.storage.postgres import single  # noqa: E402
from urbis.storage.postgres.store import PostgresEntityStore  # noqa: E402

URL = os.environ.get("URBIS_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="URBIS_TEST_DATABASE_URL is not set")
JOURNAL = ("CREATE TABLE IF NOT EXISTS test_journal (entity text, before int, after int, "
           "tag text)")
RECORD = "INSERT INTO test_journal (entity, before, after, tag) VALUES ($1, $2, $3, $4)"


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A database of this module, migrated once, dropped at the end."""
    name = f"urbis_test_{uuid.uuid4().hex[:12]}"
    run_sync(admin(f'CREATE DATABASE "{name}"'))
    try:
        run_sync(migrate_url(database_url(name)))
        yield database_url(name)
    finally:
        run_sync(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresEntityStore]:
    """An opened store with a journal table next to the entities."""
    s = PostgresEntityStore(url, min_size=1, max_size=4)
    await s.open()
    await s.db.run(lambda conn: conn.execute(JOURNAL))
    yield s
    await s.close()


def count(e: Entity | None) -> int | None:
    """The counter of an entity, None when absent."""
    return None if e is None else int(e.attrs[V + "count"][0]["value"])


def recording(tag: str) -> Any:
    """A journal writing one row per change with a single execute (deferrable)."""

    async def journal(conn: Any, tenant: str, applied: list[Applied]) -> None:
        for a in applied:
            await conn.execute(RECORD, a.entity_id, count(a.before), count(a.after), tag)

    return journal


async def rows(store: PostgresEntityStore, entity_id: str) -> list[tuple[Any, ...]]:
    """The journal rows of an entity (CTEs of one statement write in no set order)."""
    found = await store.db.run(lambda conn: conn.fetch(
        "SELECT before, after, tag FROM test_journal WHERE entity = $1", entity_id))
    return sorted((tuple(r) for r in found),
                  key=lambda r: (-1 if r[0] is None else r[0], -1 if r[1] is None else r[1],
                                 r[2]))


def new_id() -> str:
    """A fresh counter id."""
    return f"urn:ngsi-ld:Counter:single-{uuid.uuid4().hex[:8]}"


async def test_journal_rows_are_written_with_the_entity(store: PostgresEntityStore) -> None:
    store.add_journal(recording("a"))
    store.add_journal(recording("b"))
    entity_id = new_id()
    await store.mutate(TENANT, [creator(counter(entity_id))])
    await store.mutate(TENANT, [bump(entity_id, "x")])
    assert await rows(store, entity_id) == [(None, 0, "a"), (None, 0, "b"), (0, 1, "a"),
                                            (0, 1, "b")]
    assert store._deferrable  # both journals went into the write statement
    await store.mutate(TENANT, [Mutation(entity_id, lambda cur: Change(delete=True))])
    assert (await rows(store, entity_id))[-2:] == [(1, None, "a"), (1, None, "b")]
    assert len(await rows(store, entity_id)) == 6
    assert await store.get(TENANT, entity_id) is None


async def test_a_conflict_rolls_back_the_write_and_its_journal_rows(
        store: PostgresEntityStore, url: str) -> None:
    store.add_journal(recording("j"))
    entity_id = new_id()
    await store.mutate(TENANT, [creator(counter(entity_id))])
    other = PostgresEntityStore(url, min_size=1, max_size=1)
    await other.open()
    calls = 0

    def racing(cur: Entity | None) -> Change:
        nonlocal calls
        calls += 1
        assert cur is not None
        cur.attrs[V + "count"][0]["value"] += 10
        return Change(cur)

    async def overtaken(conn: Any, tenant: str, applied: list[Applied]) -> None:
        if calls == 1:  # between the first run's read and write, another writer commits
            await other.mutate(TENANT, [bump(entity_id, "other")])

    store.journals.insert(0, overtaken)
    try:
        [outcome] = await store.mutate(TENANT, [Mutation(entity_id, racing)])
    finally:
        store.journals.remove(overtaken)
        await other.close()
    assert outcome.error is None and calls == 2
    assert count(await store.get(TENANT, entity_id)) == 11  # the other's +1, then +10
    assert await rows(store, entity_id) == [(None, 0, "j"), (1, 11, "j")]


async def test_a_journal_statement_with_ctes_joins_the_write(store: PostgresEntityStore) -> None:
    async def chained(conn: Any, tenant: str, applied: list[Applied]) -> None:
        await conn.execute(
            "WITH rec AS (INSERT INTO test_journal (entity, before, after, tag) "
            "SELECT $1, $2, $3, 'cte' RETURNING entity) SELECT count(*) FROM rec",
            applied[0].entity_id, count(applied[0].before), count(applied[0].after))

    store.add_journal(chained)
    store.add_journal(recording("plain"))
    entity_id = new_id()
    await store.mutate(TENANT, [creator(counter(entity_id))])
    await store.mutate(TENANT, [bump(entity_id, "x")])
    assert store._deferrable
    assert await rows(store, entity_id) == [(None, 0, "cte"), (None, 0, "plain"),
                                            (0, 1, "cte"), (0, 1, "plain")]


async def test_a_journal_needing_the_connection_takes_the_general_path(
        store: PostgresEntityStore) -> None:
    async def reading(conn: Any, tenant: str, applied: list[Applied]) -> None:
        total = await conn.fetchval("SELECT count(*) FROM test_journal")
        await conn.execute(RECORD, applied[0].entity_id, total, None, "reader")

    store.add_journal(reading)
    entity_id = new_id()
    [outcome] = await store.mutate(TENANT, [creator(counter(entity_id))])
    assert outcome.error is None and not store._deferrable
    assert [r[2] for r in await rows(store, entity_id)] == ["reader"]


async def test_duplicate_creates_have_one_winner(store: PostgresEntityStore) -> None:
    entity_id = new_id()
    outcomes = await asyncio.gather(*(store.mutate(TENANT, [creator(counter(entity_id))])
                                      for _ in range(8)))
    errors = [o.error for [o] in outcomes]
    assert errors.count(None) == 1
    assert all(isinstance(e, AlreadyExists) for e in errors if e is not None)


async def test_many_writers_of_one_entity_lose_nothing(store: PostgresEntityStore) -> None:
    store.add_journal(recording("n"))
    entity_id = new_id()
    await store.mutate(TENANT, [creator(counter(entity_id))])
    results = await asyncio.gather(*(store.mutate(TENANT, [bump(entity_id, f"t{i}")])
                                     for i in range(40)))
    assert all(o.error is None for [o] in results)
    assert count(await store.get(TENANT, entity_id)) == 40
    changes = [(b, a) for b, a, _ in (await rows(store, entity_id))[1:]]
    assert sorted(changes) == [(i, i + 1) for i in range(40)]  # each change journaled once


def test_deferred_keeps_only_single_write_statements() -> None:
    async def check() -> None:
        deferred = single.Deferred()
        await deferred.execute("INSERT INTO t VALUES ($1)", 1)
        for refused in ("WITH RECURSIVE x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
                        "SELECT $1", "INSERT INTO t VALUES ($$a$$, $1)"):
            with pytest.raises(single.NeedsConnection):
                await deferred.execute(refused, 1)
        with pytest.raises(single.NeedsConnection):
            await deferred.execute("DELETE FROM t")  # no parameters: not worth it
        with pytest.raises(single.NeedsConnection):
            await deferred.fetch("SELECT 1")
        assert deferred.statements == [("INSERT INTO t VALUES ($1)", (1,))]

    asyncio.run(check())


def test_compose_renumbers_the_journal_parameters() -> None:
    sql, args = single.compose("urbis_w AS (DELETE FROM entities WHERE pk = $1 AND xmin = $2::xid "
                               "RETURNING pk)", [7, 8],
                               [("INSERT INTO a VALUES ($1, $2)", (1, 2)),
                                ("DELETE FROM b WHERE x = $1 OR y = $10", (3,) * 10)])
    assert "urbis_j0 AS (INSERT INTO a VALUES ($3, $4))" in sql
    assert "urbis_j1 AS (DELETE FROM b WHERE x = $5 OR y = $14)" in sql
    assert args == [7, 8, 1, 2, *(3,) * 10]


async def test_session_settings_in_the_url_reach_every_connection(url: str) -> None:
    # The documented durability trade-off: ?synchronous_commit=off (default: the server's, on).
    store = PostgresEntityStore(url + "?synchronous_commit=off", min_size=1, max_size=2)
    await store.open()
    try:
        assert await store.db.run(lambda c: c.fetchval("SHOW synchronous_commit")) == "off"
    finally:
        await store.close()
    default = PostgresEntityStore(url, min_size=1, max_size=1)
    await default.open()
    try:
        assert await default.db.run(lambda c: c.fetchval("SHOW synchronous_commit")) == "on"
    finally:
        await default.close()
