"""RegistrationStore on SQLite: the entity store's database file, writer thread and readers.

Writes run as jobs of the one writer thread, so the conflict check of a proxied registration,
the write, its index rows and its change record are one transaction, one at a time. One
process owns a SQLite file, so claims of change records are leases kept in memory: after a
crash every change is claimable again at once (sent twice, never lost).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from urbis.context.errors import AlreadyExists, Conflict, ResourceNotFound
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
from urbis.storage.registrations_base import (
    RegistrationChange,
    RegistrationPage,
    RegistrationQuery,
    RegistrationUpdate,
    SourceTally,
)
from urbis.storage.sqlite.db import Database

_COLUMNS = ("r.body, r.times_sent, r.times_failed, r.last_success, r.last_failure, "
            "r.status")
_LIVE = "(r.expires_key IS NULL OR r.expires_key > ?)"
_GET = f"SELECT {_COLUMNS} FROM registrations r WHERE r.tenant = ? AND r.id = ?"  # noqa: S608
_INSERT = ("INSERT INTO registrations (tenant, id, body, mode, ops, expires_key, created_at, "
           "modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_REWRITE = ("UPDATE registrations SET body = ?, mode = ?, ops = ?, expires_key = ?, "
            "modified_at = ? WHERE pk = ?")
_CHANGE = ("INSERT INTO registration_changes (tenant, before, after, created) "
           "VALUES (?, ?, ?, ?)")
_TALLY = (
    "UPDATE registrations SET times_sent = times_sent + ?, times_failed = times_failed + ?, "
    "last_success = coalesce(?, last_success), last_failure = coalesce(?, last_failure), "
    "status = coalesce(?, status) WHERE tenant = ? AND id = ?")
_ADD_TENANT = "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)"
_PROXIED = (f"SELECT r.pk, {_COLUMNS} FROM registrations r WHERE r.tenant = ? "  # noqa: S608
            "AND r.mode IN ('exclusive', 'redirect') AND " + _LIVE + " AND r.pk IN ("
            "SELECT pk FROM registration_entities WHERE tenant = ? AND "
            "type IN (SELECT value FROM json_each(?)))")
ANY = ""  # an index row's type, entity id or attribute that stands for any


class SqliteRegistrationStore:
    """Registrations in the SQLite file of an entity store, written by its writer thread."""

    def __init__(self, db: Database, on_new_tenant: Callable[[str], None] | None = None
                 ) -> None:
        self.db = db
        self._on_new_tenant = on_new_tenant  # the entity store caches its tenants
        self._leased: dict[int, float] = {}  # change seq -> lease end (epoch seconds)

    async def tenant_exists(self, tenant: str) -> bool:
        """A tenant exists from its first write."""
        row = self.db.read_inline(
            lambda c: c.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone())
        return row is not None

    async def create(self, tenant: str, registration: Registration, now: str) -> None:
        """Insert with its index rows and change record; AlreadyExists; Conflict."""
        reg = registration

        def job(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM registrations WHERE tenant = ? AND id = ?",
                            (tenant, reg.id)).fetchone():
                raise AlreadyExists(f"registration {reg.id} already exists")
            _check_conflicts(conn, tenant, reg, None, now)
            cursor = conn.execute(_INSERT, (tenant, reg.id, _body(reg), *_columns(reg),
                                            reg.created_at, reg.modified_at))
            _index(conn, tenant, int(cursor.lastrowid or 0), reg)
            conn.execute(_ADD_TENANT, (tenant, reg.created_at))
            conn.execute(_CHANGE, (tenant, None, _body(reg), time.time()))

        await self.db.write(job)
        if self._on_new_tenant is not None:
            self._on_new_tenant(tenant)

    async def get(self, tenant: str, registration_id: str) -> Registration | None:
        """One registration (a primary-key look-up on the calling thread)."""
        row = self.db.read_inline(lambda c: c.execute(_GET, (tenant, registration_id)).fetchone())
        return None if row is None else _decode(row)

    async def query(self, tenant: str, query: RegistrationQuery) -> RegistrationPage:
        """Index narrowing in SQL, the exact test in Python, then the page."""
        sql, args = _narrowing(tenant, query.types, query.ids, query.attrs)

        def job(conn: sqlite3.Connection) -> RegistrationPage:
            if query.test is None:
                rows = conn.execute(sql + " LIMIT ? OFFSET ?",
                                    (*args, query.limit, query.offset)).fetchall()
                total = conn.execute(f"SELECT count(*) FROM ({sql})",  # noqa: S608
                                     args).fetchone()[0] if query.count else None
                return RegistrationPage([_decode(r) for r in rows], total)
            found = [r for r in map(_decode, conn.execute(sql, args)) if query.test(r)]
            page = found[query.offset:query.offset + query.limit] if query.limit > 0 else []
            return RegistrationPage(page, len(found) if query.count else None)

        return await self.db.read(job)

    async def update(self, tenant: str, registration_id: str, fn: RegistrationUpdate,
                     now: str) -> Registration:
        """Read, change and write back in one job of the writer; ResourceNotFound; Conflict."""

        def job(conn: sqlite3.Connection) -> Registration:
            row = conn.execute(f"SELECT r.pk, {_COLUMNS} FROM registrations r "  # noqa: S608
                               "WHERE r.tenant = ? AND r.id = ?",
                               (tenant, registration_id)).fetchone()
            if row is None:
                raise ResourceNotFound(f"registration {registration_id} not found")
            old = _decode(row[1:])
            new = fn(old)
            _check_conflicts(conn, tenant, new, row[0], now)
            conn.execute(_REWRITE, (_body(new), *_columns(new), new.modified_at, row[0]))
            _index(conn, tenant, row[0], new)
            conn.execute(_CHANGE, (tenant, _body(old), _body(new), time.time()))
            return new

        return await self.db.write(job)

    async def delete(self, tenant: str, registration_id: str) -> bool:
        """Delete (its index rows cascade) and record the change."""

        def job(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT body FROM registrations WHERE tenant = ? AND id = ?",
                               (tenant, registration_id)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM registrations WHERE tenant = ? AND id = ?",
                         (tenant, registration_id))
            conn.execute(_CHANGE, (tenant, row[0], None, time.time()))
            return True

        return await self.db.write(job)

    async def matching(self, tenant: str, entity_id: str | None, types: Sequence[str] | None,
                       attrs: Sequence[str] | None, operation: str, now: str
                       ) -> list[Registration]:
        """An index look-up by type, id and attribute; `serves` checks each candidate."""
        bit = operation_bit(operation)
        sql, args = _narrowing(tenant, types, None if entity_id is None else [entity_id], attrs,
                               extra=f"AND (r.ops & ?) != 0 AND {_LIVE}")
        key = datetime_key(now) or now
        rows = await self.db.read(lambda c: c.execute(sql, (*args, bit, key)).fetchall())
        return [reg for reg in map(_decode, rows)
                if serves(reg, entity_id, types, attrs, operation, now)]

    async def count(self, tenant: str, now: str) -> int:
        """Live registrations of the tenant."""
        key = datetime_key(now) or now
        row = self.db.read_inline(lambda c: c.execute(
            f"SELECT count(*) FROM registrations r WHERE r.tenant = ? AND {_LIVE}",  # noqa: S608
            (tenant, key)).fetchone())
        return int(row[0])

    async def live(self, tenant: str, now: str, limit: int) -> list[Registration]:
        """Up to `limit` live registrations in creation order."""
        key = datetime_key(now) or now
        rows = await self.db.read(lambda c: c.execute(
            f"SELECT {_COLUMNS} FROM registrations r WHERE r.tenant = ? AND {_LIVE} "  # noqa: S608
            "ORDER BY r.pk LIMIT ?", (tenant, key, limit)).fetchall())
        return [_decode(r) for r in rows]

    async def record_outcomes(self, tallies: Sequence[SourceTally]) -> None:
        """Add many registrations' outcomes in one job of the writer."""
        rows = [(t.sent, t.failed, t.last_success, t.last_failure, t.status, t.tenant,
                 t.registration_id) for t in tallies]
        if rows:
            await self.db.write(lambda c: c.executemany(_TALLY, rows))

    async def claim_changes(self, limit: int, lease: float) -> list[RegistrationChange]:
        """The oldest changes not leased (or whose lease ended), leased to us."""
        now = time.time()

        def job(conn: sqlite3.Connection) -> list[Any]:
            rows = conn.execute("SELECT seq, tenant, before, after, created FROM "
                                "registration_changes ORDER BY seq").fetchall()
            return [r for r in rows if self._leased.get(r[0], 0.0) <= now][:limit]

        rows = await self.db.write(job)
        for row in rows:
            self._leased[row[0]] = now + lease
        return [RegistrationChange(seq, tenant, _maybe(before), _maybe(after), created)
                for seq, tenant, before, after, created in rows]

    async def finish_changes(self, seqs: Sequence[int]) -> None:
        """Delete handled changes."""
        if not seqs:
            return
        marks = ",".join("?" * len(seqs))
        await self.db.write(lambda c: c.execute(
            f"DELETE FROM registration_changes WHERE seq IN ({marks})", tuple(seqs)))  # noqa: S608
        for seq in seqs:
            self._leased.pop(seq, None)


def _narrowing(tenant: str, types: Sequence[str] | None, ids: Sequence[str] | None,
               attrs: Sequence[str] | None, extra: str = "") -> tuple[str, tuple[Any, ...]]:
    """SELECT of the registrations whose index rows pass (types, ids, attrs), in pk order.

    Every condition is `column IN ('', ...)`: equality look-ups in the indexes.
    """
    conditions, args = ["e.tenant = ?"], [tenant]
    for column, values in (("e.type", types), ("e.entity_id", ids), ("a.attr", attrs)):
        if values:
            conditions.append(f"{column} IN (SELECT value FROM json_each(?))")  # noqa: S608
            args.append(json.dumps([ANY, *values]))
    sql = (f"SELECT {_COLUMNS} FROM registrations r WHERE r.pk IN (SELECT e.pk FROM "  # noqa: S608
           "registration_entities e JOIN registration_attrs a ON a.pk = e.pk AND "
           f"a.info = e.info WHERE {' AND '.join(conditions)}) {extra} ORDER BY r.pk")
    return sql, tuple(args)


def _check_conflicts(conn: sqlite3.Connection, tenant: str, reg: Registration,
                     own_pk: int | None, now: str) -> None:
    if reg.effective_mode not in PROXIED:
        return
    types = json.dumps([ANY, *sorted({t for i in reg.information for e in i.entities or ()
                                      for t in e.types})])
    rows = conn.execute(_PROXIED, (tenant, datetime_key(now) or now, tenant, types))
    for row in rows:
        other = _decode(row[1:])
        if row[0] != own_pk and conflicts(reg, other, now):
            raise Conflict(f"registration {reg.id} overlaps the {other.effective_mode} "
                           f"registration {other.id} (clause 4.3.6.3)")


def _body(reg: Registration) -> str:
    return json.dumps(to_record(reg), ensure_ascii=False)


def _maybe(body: str | None) -> Registration | None:
    return None if body is None else from_record(json.loads(body))


def _columns(reg: Registration) -> tuple[Any, ...]:
    """mode, ops, expires_key."""
    return (reg.effective_mode, reg.operations_mask, reg.expires_key)


def _index(conn: sqlite3.Connection, tenant: str, pk: int, reg: Registration) -> None:
    conn.execute("DELETE FROM registration_entities WHERE pk = ?", (pk,))
    conn.execute("DELETE FROM registration_attrs WHERE pk = ?", (pk,))
    entities: list[tuple[Any, ...]] = []
    attrs: list[tuple[Any, ...]] = []
    for n, info in enumerate(reg.information):
        if info.entities is None:
            entities.append((pk, tenant, n, ANY, ANY))
        else:
            entities.extend((pk, tenant, n, t, e.id or ANY) for e in info.entities
                            for t in e.types)
        attrs.extend((pk, n, a) for a in (info.attrs if info.attrs is not None else [ANY]))
    conn.executemany("INSERT INTO registration_entities (pk, tenant, info, type, entity_id) "
                     "VALUES (?, ?, ?, ?, ?)", entities)
    conn.executemany("INSERT INTO registration_attrs (pk, info, attr) VALUES (?, ?, ?)",
                     attrs)


def _decode(row: Sequence[Any]) -> Registration:
    """A registration from (body, times_sent, times_failed, last_*, status) columns."""
    status = SourceStatus(times_sent=row[1], times_failed=row[2], last_success=row[3],
                          last_failure=row[4], status=row[5])
    return from_record(json.loads(row[0]), status)
