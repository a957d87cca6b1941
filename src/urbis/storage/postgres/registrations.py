"""RegistrationStore on PostgreSQL: the `registrations` tables, on the entity store's pool.

Each write is one transaction with its index rows and its change record, and is announced to
the other workers (TOPIC_REGISTRATIONS). A write of a proxied (exclusive or redirect)
registration first takes a per-tenant advisory lock, so its conflict check and the write are
never interleaved with another proxied write of the tenant by another worker. Change records
are claimed with `FOR UPDATE SKIP LOCKED` under a lease, as the notification outbox is.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from urbis.context.errors import AlreadyExists, BadRequestData, Conflict, ResourceNotFound
from urbis.context.query.q import datetime_key
from urbis.context.registration import (
    PROXIED,
    Registration,
    SourceStatus,
    from_record,
    to_record,
)
from urbis.context.registration_match import conflicts, serves
from urbis.context.registration_ops import operation_bit
from urbis.storage.postgres.db import Database
from urbis.storage.postgres.notify import announce
from urbis.storage.registrations_base import (
    TOPIC_REGISTRATIONS,
    RegistrationChange,
    RegistrationPage,
    RegistrationQuery,
    RegistrationUpdate,
    SourceTally,
)

_COLUMNS = ("r.body, r.times_sent, r.times_failed, r.last_success, r.last_failure, "
            "r.status")
_GET = f"SELECT {_COLUMNS} FROM registrations r WHERE r.tenant = $1 AND r.id = $2"  # noqa: S608
_LOCK_ROW = (f"SELECT r.pk, {_COLUMNS} FROM registrations r "  # noqa: S608
             "WHERE r.tenant = $1 AND r.id = $2 FOR UPDATE")
_INSERT = ("INSERT INTO registrations (tenant, id, body, mode, ops, expires_key, created_at, "
           "modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
           "ON CONFLICT (tenant, id) DO NOTHING RETURNING pk")
_REWRITE = ("UPDATE registrations SET body = $1, mode = $2, ops = $3, expires_key = $4, "
            "modified_at = $5 WHERE pk = $6")
_DELETE = "DELETE FROM registrations WHERE tenant = $1 AND id = $2 RETURNING body"
_CHANGE = ("INSERT INTO registration_changes (tenant, before, after, created) "
           "VALUES ($1, $2, $3, $4)")
_ADD_TENANT = "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING"
_TENANT_LOCK = "SELECT pg_advisory_xact_lock(hashtext('urbis-registrations'), hashtext($1))"
_PROXIED = (f"SELECT r.pk, {_COLUMNS} FROM registrations r WHERE r.tenant = $1 "  # noqa: S608
            "AND r.mode IN ('exclusive', 'redirect') "
            "AND (r.expires_key IS NULL OR r.expires_key > $2) AND r.pk IN ("
            "SELECT pk FROM registration_entities WHERE tenant = $1 AND "
            "type = ANY($3::text[]))")
ANY = ""  # an index row's type, entity id or attribute that stands for any
_ENTITIES = ("INSERT INTO registration_entities (pk, tenant, info, type, entity_id) "
             "SELECT $1, $2, * FROM unnest($3::int[], $4::text[], $5::text[])")
_ATTRS = ("INSERT INTO registration_attrs (pk, info, attr) "
          "SELECT $1, * FROM unnest($2::int[], $3::text[])")
_TALLY = (
    "UPDATE registrations r SET times_sent = r.times_sent + t.sent, "
    "times_failed = r.times_failed + t.failed, "
    "last_success = coalesce(t.last_success, r.last_success), "
    "last_failure = coalesce(t.last_failure, r.last_failure), "
    "status = coalesce(t.status, r.status) "
    "FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], "
    "$7::text[]) AS t(tenant, id, sent, failed, last_success, last_failure, status) "
    "WHERE r.tenant = t.tenant AND r.id = t.id")
_CLAIM = (
    "UPDATE registration_changes SET lease_until = $1 + $2 WHERE seq IN ("
    "SELECT seq FROM registration_changes WHERE lease_until <= $1 ORDER BY seq LIMIT $3 "
    "FOR UPDATE SKIP LOCKED) RETURNING seq, tenant, before, after, created")
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class PostgresRegistrationStore:
    """Registrations in PostgreSQL, sharing the entity store's pool and schema."""

    def __init__(self, database: Database) -> None:
        self.db = database

    async def tenant_exists(self, tenant: str) -> bool:
        """A tenant exists from its first write."""
        if "\x00" in tenant:
            return False
        found = await self.db.run(
            lambda conn: conn.fetchval("SELECT 1 FROM tenants WHERE name = $1", tenant))
        return bool(found)

    async def create(self, tenant: str, registration: Registration, now: str) -> None:
        """Insert with its index rows and change record; AlreadyExists; Conflict."""
        reg = registration
        body = _body(reg)
        _check_text(tenant, reg.id)

        async def job(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await _check_conflicts(conn, tenant, reg, None, now)
                pk = await conn.fetchval(_INSERT, tenant, reg.id, body, *_columns(reg),
                                         reg.created_at, reg.modified_at)
                if pk is None:
                    raise AlreadyExists(f"registration {reg.id} already exists")
                await _index(conn, tenant, pk, reg)
                await conn.execute(_ADD_TENANT, tenant, reg.created_at)
                await conn.execute(_CHANGE, tenant, None, body, time.time())
                await announce(conn, TOPIC_REGISTRATIONS, tenant)

        await self.db.run(job, retry=False)

    async def get(self, tenant: str, registration_id: str) -> Registration | None:
        """One registration by id (an index look-up)."""
        if "\x00" in tenant or "\x00" in registration_id:
            return None
        row = await self.db.run(lambda conn: conn.fetchrow(_GET, tenant, registration_id))
        return None if row is None else _decode(row)

    async def query(self, tenant: str, query: RegistrationQuery) -> RegistrationPage:
        """Index narrowing in SQL, the exact test in Python, then the page (one snapshot)."""
        if "\x00" in tenant:
            return RegistrationPage([], 0 if query.count else None)
        sql, args = _narrowing(tenant, query.types, query.ids, query.attrs)

        async def job(conn: asyncpg.Connection) -> RegistrationPage:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                if query.test is None:
                    n = len(args)
                    rows = await conn.fetch(f"{sql} LIMIT ${n + 1} OFFSET ${n + 2}",
                                            *args, query.limit, query.offset)
                    total = await conn.fetchval(f"SELECT count(*) FROM ({sql}) c",  # noqa: S608
                                                *args) if query.count else None
                    return RegistrationPage([_decode(r) for r in rows], total)
                found = [r for r in map(_decode, await conn.fetch(sql, *args)) if query.test(r)]
            page = found[query.offset:query.offset + query.limit] if query.limit > 0 else []
            return RegistrationPage(page, len(found) if query.count else None)

        return await self.db.run(job)

    async def update(self, tenant: str, registration_id: str, fn: RegistrationUpdate,
                     now: str) -> Registration:
        """Lock, change and write back in one transaction; ResourceNotFound; Conflict."""
        missing = ResourceNotFound(f"registration {registration_id} not found")
        if "\x00" in tenant or "\x00" in registration_id:
            raise missing

        async def job(conn: asyncpg.Connection) -> Registration:
            async with conn.transaction():
                row = await conn.fetchrow(_LOCK_ROW, tenant, registration_id)
                if row is None:
                    raise missing
                old = _decode(row[1:])
                new = fn(old)
                await _check_conflicts(conn, tenant, new, row[0], now)
                body = _body(new)
                await conn.execute(_REWRITE, body, *_columns(new), new.modified_at, row[0])
                await _index(conn, tenant, row[0], new)
                await conn.execute(_CHANGE, tenant, _body(old), body, time.time())
                await announce(conn, TOPIC_REGISTRATIONS, tenant)
            return new

        return await self.db.run(job, retry=False)

    async def delete(self, tenant: str, registration_id: str) -> bool:
        """Delete (its index rows cascade) and record the change."""
        if "\x00" in tenant or "\x00" in registration_id:
            return False

        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                before = await conn.fetchval(_DELETE, tenant, registration_id)
                if before is None:
                    return False
                await conn.execute(_CHANGE, tenant, orjson.dumps(before), None, time.time())
                await announce(conn, TOPIC_REGISTRATIONS, tenant)
            return True

        return await self.db.run(job, retry=False)

    async def matching(self, tenant: str, entity_id: str | None, types: Sequence[str] | None,
                       attrs: Sequence[str] | None, operation: str, now: str
                       ) -> list[Registration]:
        """An index look-up by type, id and attribute; `serves` checks each candidate."""
        bit = operation_bit(operation)
        if "\x00" in tenant:
            return []
        sql, args = _narrowing(tenant, _clean(types), None if entity_id is None
                               else _clean([entity_id]), _clean(attrs), live=True)
        key = datetime_key(now) or now
        rows = await self.db.run(lambda conn: conn.fetch(sql, *args, bit, key))
        return [reg for reg in map(_decode, rows)
                if serves(reg, entity_id, types, attrs, operation, now)]

    async def count(self, tenant: str, now: str) -> int:
        """Live registrations of the tenant."""
        if "\x00" in tenant:
            return 0
        key = datetime_key(now) or now
        found = await self.db.run(lambda conn: conn.fetchval(
            "SELECT count(*) FROM registrations WHERE tenant = $1 AND (expires_key IS NULL "
            "OR expires_key > $2)", tenant, key))
        return int(found)

    async def live(self, tenant: str, now: str, limit: int) -> list[Registration]:
        """Up to `limit` live registrations in creation order."""
        if "\x00" in tenant:
            return []
        key = datetime_key(now) or now
        rows = await self.db.run(lambda conn: conn.fetch(
            f"SELECT {_COLUMNS} FROM registrations r WHERE r.tenant = $1 AND "  # noqa: S608
            "(r.expires_key IS NULL OR r.expires_key > $2) ORDER BY r.pk LIMIT $3",
            tenant, key, limit))
        return [_decode(r) for r in rows]

    async def record_outcomes(self, tallies: Sequence[SourceTally]) -> None:
        """Add many registrations' outcomes in one statement."""
        keep = [t for t in tallies if "\x00" not in t.tenant + t.registration_id]
        if not keep:
            return
        columns = [[getattr(t, name) for t in keep] for name in (
            "tenant", "registration_id", "sent", "failed", "last_success", "last_failure",
            "status")]
        await self.db.run(lambda conn: conn.execute(_TALLY, *columns), retry=False)

    async def claim_changes(self, limit: int, lease: float) -> list[RegistrationChange]:
        """The oldest unclaimed (or lease-expired) changes, leased to this worker."""
        rows = await self.db.run(lambda c: c.fetch(_CLAIM, time.time(), lease, limit),
                                 retry=False)
        return [RegistrationChange(r[0], r[1], _maybe(r[2]), _maybe(r[3]), r[4])
                for r in sorted(rows, key=lambda r: r[0])]

    async def finish_changes(self, seqs: Sequence[int]) -> None:
        """Delete handled changes."""
        if seqs:
            await self.db.run(lambda c: c.execute(
                "DELETE FROM registration_changes WHERE seq = ANY($1::bigint[])", list(seqs)))


def _narrowing(tenant: str, types: Sequence[str] | None, ids: Sequence[str] | None,
               attrs: Sequence[str] | None, *, live: bool = False
               ) -> tuple[str, list[Any]]:
    """SELECT of the registrations whose index rows pass (types, ids, attrs), in pk order.

    Every condition is `column = ANY(['', ...])`: equality look-ups in the indexes.
    """
    conditions: list[str] = ["e.tenant = $1"]
    args: list[Any] = [tenant]
    for column, values in (("e.type", types), ("e.entity_id", ids), ("a.attr", attrs)):
        if values:
            args.append([ANY, *values])
            conditions.append(f"{column} = ANY(${len(args)}::text[])")
    extra = ""
    if live:
        n = len(args)
        extra = (f"AND (r.ops & ${n + 1}) <> 0 AND (r.expires_key IS NULL OR "
                 f"r.expires_key > ${n + 2})")
    sql = (f"SELECT {_COLUMNS} FROM registrations r WHERE r.pk IN (SELECT e.pk FROM "  # noqa: S608
           "registration_entities e JOIN registration_attrs a ON a.pk = e.pk AND "
           f"a.info = e.info WHERE {' AND '.join(conditions)}) {extra} ORDER BY r.pk")
    return sql, args


async def _check_conflicts(conn: asyncpg.Connection, tenant: str, reg: Registration,
                           own_pk: int | None, now: str) -> None:
    if reg.effective_mode not in PROXIED:
        return
    await conn.execute(_TENANT_LOCK, tenant)
    types = [ANY, *sorted({t for i in reg.information for e in i.entities or ()
                           for t in e.types})]
    for row in await conn.fetch(_PROXIED, tenant, datetime_key(now) or now, types):
        other = _decode(row[1:])
        if row[0] != own_pk and conflicts(reg, other, now):
            raise Conflict(f"registration {reg.id} overlaps the {other.effective_mode} "
                           f"registration {other.id} (clause 4.3.6.3)")


def _clean(values: Sequence[str] | None) -> list[str] | None:
    return None if values is None else [v for v in values if "\x00" not in v]


def _body(reg: Registration) -> bytes:
    """The jsonb document; BadRequestData for text PostgreSQL cannot store (U+0000)."""
    body = orjson.dumps(to_record(reg))
    if b"\\u0000" in body and _NUL.search(body):
        raise BadRequestData(f"registration {reg.id!r:.100} cannot be stored: text shall not "
                             "contain the character U+0000")
    return body


def _check_text(*texts: str) -> None:
    if any("\x00" in t for t in texts):
        raise BadRequestData("text shall not contain the character U+0000")


def _maybe(body: Any) -> Registration | None:
    return None if body is None else from_record(body)


def _columns(reg: Registration) -> tuple[Any, ...]:
    """mode, ops, expires_key."""
    return (reg.effective_mode, reg.operations_mask, reg.expires_key)


async def _index(conn: asyncpg.Connection, tenant: str, pk: int, reg: Registration) -> None:
    await conn.execute("DELETE FROM registration_entities WHERE pk = $1", pk)
    await conn.execute("DELETE FROM registration_attrs WHERE pk = $1", pk)
    infos: list[int] = []
    types: list[str] = []
    ids: list[str] = []
    attr_infos: list[int] = []
    attrs: list[str] = []
    for n, info in enumerate(reg.information):
        for entity_type, entity_id in ([(ANY, ANY)] if info.entities is None else
                                       [(t, e.id or ANY) for e in info.entities
                                        for t in e.types]):
            infos.append(n)
            types.append(entity_type)
            ids.append(entity_id)
        for attr in info.attrs if info.attrs is not None else [ANY]:
            attr_infos.append(n)
            attrs.append(attr)
    await conn.execute(_ENTITIES, pk, tenant, infos, types, ids)
    await conn.execute(_ATTRS, pk, attr_infos, attrs)


def _decode(row: Sequence[Any]) -> Registration:
    """A registration from (body, times_sent, times_failed, last_*, status) columns."""
    status = SourceStatus(times_sent=row[1], times_failed=row[2], last_success=row[3],
                          last_failure=row[4], status=row[5])
    return from_record(row[0], status)
