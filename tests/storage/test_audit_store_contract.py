"""The AuditStore contract, on every backend: append, journal, filters, seal, chain, purge."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_entity_store_contract import creator, ent

from urbis.context.actor import Actor, Call, current_call
from urbis.context.audit import AuditFilter, AuditRecord, chain_hash
from urbis.settings import Settings
from urbis.storage.base import Change, Mutation
from urbis.storage.registry import Stores, open_stores, sqlite_path
from urbis.storage.security_base import AuditStore

NOW = "2026-01-01T00:00:00.000000Z"
INJECTIONS = ["' OR '1'='1", "x'); DELETE FROM audit_log; --", "%", "_", "*", '"', "\\",
              "urn:ngsi-ld:Car:1' OR 1=1 --", "$1", "?"]


async def raw(store: str, sql: str) -> list[tuple[Any, ...]]:
    """Run SQL on the store's database behind urbis's back (as an intruder would)."""
    if store.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(store), isolation_level=None)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    import asyncpg

    pg = await asyncpg.connect(store)
    try:
        return [tuple(r) for r in await pg.fetch(sql)]
    finally:
        await pg.close()


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    opened = await open_stores(settings.store, synchronous="normal")
    assert opened.audit is not None
    yield opened
    await opened.close()


def rec(n: int, **members: Any) -> AuditRecord:
    base: dict[str, Any] = {"at": f"2026-01-0{n % 9 + 1}T00:00:00.000000Z", "tenant": "city",
                            "principal": f"apikey:{n}", "roles": ["operator"],
                            "operation": "EntityService.create",
                            "entity_ids": [f"urn:ngsi-ld:Car:{n}"], "entity_count": 1,
                            "attributes": ["https://example.org/speed"]}
    return AuditRecord(**{**base, **members})


def audit(stores: Stores) -> AuditStore:
    assert stores.audit is not None
    return stores.audit


async def test_append_and_filters(stores: Stores) -> None:
    log = audit(stores)
    await log.append(rec(1))
    await log.append(rec(2, tenant="other", decision="deny", reason="may not",
                         client="10.0.0.1", request_id="r-2"))
    await log.append(rec(3, operation="EntityService.delete", entity_ids=["a", "b"],
                         entity_count=2))
    every = await log.query(AuditFilter())
    assert [r.principal for r in every] == ["apikey:1", "apikey:2", "apikey:3"]
    assert every[0].seq < every[1].seq < every[2].seq
    second = every[1]
    assert (second.decision, second.reason, second.client, second.request_id) == (
        "deny", "may not", "10.0.0.1", "r-2")
    # sealed now (SQLite: on insert) or by the next seal (PostgreSQL)
    assert second.hash is None or second.chain_pos == 2

    async def principals(**kw: Any) -> list[str]:
        return [r.principal for r in await log.query(AuditFilter(**kw))]

    assert await principals(tenants=["other"]) == ["apikey:2"]
    assert await principals(tenants=[]) == []
    assert await principals(principal="apikey:3") == ["apikey:3"]
    assert await principals(operation="EntityService.delete") == ["apikey:3"]
    assert await principals(entity_id="b") == ["apikey:3"]
    assert await principals(decision="deny") == ["apikey:2"]
    assert await principals(since="2026-01-03T00:00:00.000000Z") == ["apikey:2", "apikey:3"]
    assert await principals(until="2026-01-03T00:00:00.000000Z") == ["apikey:1"]
    assert await principals(limit=1, offset=1) == ["apikey:2"]
    assert await principals(after_seq=every[1].seq) == ["apikey:3"]


async def test_filters_are_values_never_sql(stores: Stores) -> None:
    log = audit(stores)
    await log.append(rec(1))
    for text in INJECTIONS:
        for member in ("principal", "operation", "entity_id", "decision"):
            assert await log.query(AuditFilter(**{member: text})) == []
        assert await log.query(AuditFilter(tenants=[text])) == []
        assert await log.query(AuditFilter(since=text, until=text)) == []
    assert len(await log.query(AuditFilter())) == 1


async def test_journal_writes_one_record_per_batch(stores: Stores) -> None:
    actor = Actor(tenant="t1", principal="apikey:abc", roles=frozenset({"operator"}),
                  client="192.0.2.7")
    token = current_call.set(Call(actor, "BatchService.create", "req-1"))
    try:
        await stores.entities.mutate("t1", [creator(ent(i, speed=i)) for i in range(3)])
    finally:
        current_call.reset(token)
    [record] = await audit(stores).query(AuditFilter())
    assert (record.tenant, record.principal, record.roles, record.client, record.request_id,
            record.operation, record.decision) == (
        "t1", "apikey:abc", ["operator"], "192.0.2.7", "req-1", "BatchService.create", "allow")
    assert record.entity_ids == [f"urn:ngsi-ld:Car:{i}" for i in range(3)]
    assert record.entity_count == 3
    assert record.attributes == ["https://example.org/vocab/speed"]
    # outside any service call: the platform itself
    await stores.entities.mutate("t1", [Mutation("urn:ngsi-ld:Car:1",
                                                  lambda cur: Change(delete=True))])
    last = (await audit(stores).query(AuditFilter()))[-1]
    assert (last.principal, last.operation, last.entity_ids) == (
        "urbis", "internal", ["urn:ngsi-ld:Car:1"])


async def test_nothing_written_nothing_recorded(stores: Stores) -> None:
    def boom(cur: Any) -> Change:
        raise RuntimeError("the batch fails")

    with pytest.raises(RuntimeError):
        await stores.entities.mutate("t1", [creator(ent(1)), Mutation("x", boom)])
    await stores.entities.mutate("t1", [Mutation("urn:ngsi-ld:Car:9", lambda cur: Change())])
    assert await audit(stores).query(AuditFilter()) == []
    assert await stores.entities.get("t1", "urn:ngsi-ld:Car:1") is None


async def test_seal_chains_in_seq_order(stores: Stores) -> None:
    log = audit(stores)
    for n in range(5):
        await log.append(rec(n))
    unsealed = (await log.state()).unsealed
    assert unsealed in (0, 5)  # SQLite seals on insert, PostgreSQL later
    assert await log.seal(3) == min(unsealed, 3)
    assert await log.seal(10) == unsealed - min(unsealed, 3)
    assert await log.seal(10) == 0
    state = await log.state()
    chain = await log.chain(0, 100)
    assert [r.chain_pos for r in chain] == [1, 2, 3, 4, 5]
    previous = ""
    for r in chain:
        assert r.hash == chain_hash(previous, r)
        previous = r.hash
    assert (state.head_pos, state.head_hash, state.unsealed) == (5, previous, 0)
    assert [r.chain_pos for r in await log.chain(3, 1)] == [4]


async def test_sealed_records_are_append_only(stores: Stores, settings: Settings) -> None:
    log = audit(stores)
    await log.append(rec(1))
    await log.append(rec(2))
    await log.seal()
    for sql in ("UPDATE audit_log SET principal = 'mallory'",
                "DELETE FROM audit_log WHERE chain_pos = 2"):
        with pytest.raises(Exception, match="append-only"):
            await raw(settings.store, sql)
    assert len(await log.query(AuditFilter())) == 2


async def test_purge_moves_the_anchor(stores: Stores) -> None:
    log = audit(stores)
    for n in range(1, 6):
        await log.append(rec(n, at=f"2026-01-0{n}T00:00:00.000000Z"))
    await log.seal()
    chain = await log.chain(0, 10)
    assert await log.purge("2026-01-03T12:00:00.000000Z") == 3
    assert await log.purge("2026-01-03T12:00:00.000000Z") == 0
    state = await log.state()
    assert (state.anchor_pos, state.anchor_hash, state.anchor_at) == (
        3, chain[2].hash, "2026-01-03T00:00:00.000000Z")
    assert [r.chain_pos for r in await log.chain(0, 10)] == [4, 5]
    assert await log.purge("2027-01-01T00:00:00.000000Z") == 2
    await log.append(rec(9, at="2026-01-09T00:00:00.000000Z"))  # the chain goes on
    await log.seal()
    assert [r.principal for r in await log.query(AuditFilter())] == ["apikey:9"]
    assert [r.chain_pos for r in await log.chain(0, 10)] == [6]
