"""SubscriptionStore on SQLite: the entity store's database file, writer thread and readers.

Writes run as jobs of the one writer thread (group commit, `urbis.storage.sqlite.db`), so a
subscription write is durable when it returns and never races an entity write. The type and
watched-attribute index rows of a subscription are rewritten with it. The same store keeps the
subscriptions to context source registrations in tables of the same shape (`prefix="csource_"`).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from urbis.context.errors import AlreadyExists, ResourceNotFound
from urbis.context.query.q import datetime_key
from urbis.context.subscription import FAILED, OK, Delivery, Subscription, from_record, to_record
from urbis.storage.base import (
    DeliveryTally,
    NotificationOutcome,
    SubscriptionPage,
    SubscriptionUpdate,
)
from urbis.storage.sqlite.db import Database

_COLUMNS = ("s.body, s.times_sent, s.times_failed, s.last_notification, s.last_success, "
            "s.last_failure, s.last_status")
_LIVE = "s.is_active = 1 AND (s.expires_key IS NULL OR s.expires_key > ?)"
_GET = f"SELECT {_COLUMNS} FROM subscriptions s WHERE s.tenant = ? AND s.id = ?"  # noqa: S608
_PAGE = (f"SELECT {_COLUMNS} FROM subscriptions s WHERE s.tenant = ? "  # noqa: S608
         "ORDER BY s.pk LIMIT ? OFFSET ?")
_COUNT = "SELECT count(*) FROM subscriptions WHERE tenant = ?"
_ACTIVE = f"SELECT s.tenant, {_COLUMNS} FROM subscriptions s WHERE {_LIVE} ORDER BY s.pk"  # noqa: S608
_CANDIDATES = (
    f"SELECT {_COLUMNS} FROM subscriptions s WHERE s.tenant = ? AND {_LIVE} "  # noqa: S608
    "AND s.pk IN (SELECT pk FROM subscription_types WHERE tenant = ? AND "
    "(type IS NULL OR type IN (SELECT value FROM json_each(?)))) "
    "AND s.pk IN (SELECT pk FROM subscription_attrs WHERE tenant = ? AND "
    "(attr IS NULL OR attr IN (SELECT value FROM json_each(?)))) ORDER BY s.pk")
_INSERT = ("INSERT INTO subscriptions (tenant, id, body, is_active, expires_key, time_interval, "
           "created_at, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_REWRITE = ("UPDATE subscriptions SET body = ?, is_active = ?, expires_key = ?, "
            "time_interval = ?, modified_at = ? WHERE pk = ?")
_RECORD = (
    "UPDATE subscriptions SET times_sent = times_sent + 1, times_failed = times_failed + ?, "
    "last_notification = ?, last_success = CASE WHEN ? THEN ? ELSE last_success END, "
    "last_failure = CASE WHEN ? THEN last_failure ELSE ? END, "
    "last_status = coalesce(?, last_status) WHERE tenant = ? AND id = ?")
_TALLY = (
    "UPDATE subscriptions SET times_sent = times_sent + ?, times_failed = times_failed + ?, "
    "last_notification = coalesce(?, last_notification), "
    "last_success = coalesce(?, last_success), last_failure = coalesce(?, last_failure), "
    "last_status = coalesce(?, last_status) WHERE tenant = ? AND id = ?")
_ADD_TENANT = "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)"
_EXISTS = "SELECT 1 FROM subscriptions WHERE tenant = ? AND id = ?"
_LOCK = f"SELECT s.pk, {_COLUMNS} FROM subscriptions s WHERE s.tenant = ? AND s.id = ?"  # noqa: S608
_DELETE = "DELETE FROM subscriptions WHERE tenant = ? AND id = ?"
_TABLE = re.compile(r"\b(subscriptions|subscription_types|subscription_attrs)\b")


@dataclass(frozen=True, slots=True)
class _Sql:
    """The statements of one set of subscription tables."""

    get: str = _GET
    page: str = _PAGE
    count: str = _COUNT
    active: str = _ACTIVE
    candidates: str = _CANDIDATES
    insert: str = _INSERT
    rewrite: str = _REWRITE
    record: str = _RECORD
    tally: str = _TALLY
    exists: str = _EXISTS
    lock: str = _LOCK
    delete: str = _DELETE
    types: str = "subscription_types"
    attrs: str = "subscription_attrs"

    @classmethod
    def of(cls, prefix: str) -> _Sql:
        """The statements with every table name prefixed."""
        fields = {name: _TABLE.sub(lambda m: prefix + m.group(1), getattr(cls(), name))
                  for name in cls.__dataclass_fields__}
        return cls(**fields)


class SqliteSubscriptionStore:
    """Subscriptions in the SQLite file of an entity store, written by its writer thread."""

    def __init__(self, db: Database, on_new_tenant: Callable[[str], None] | None = None,
                 *, prefix: str = "") -> None:
        self.db = db
        self._on_new_tenant = on_new_tenant
        self._sql = _Sql.of(prefix)

    async def open(self) -> None:
        """Nothing to do: the entity store opens (and migrates) the shared database."""

    async def close(self) -> None:
        """Nothing to do: the entity store closes the shared database."""

    async def tenant_exists(self, tenant: str) -> bool:
        """A tenant exists from its first write (an entity or a subscription)."""
        row = self.db.read_inline(
            lambda c: c.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone())
        return row is not None

    async def create(self, tenant: str, subscription: Subscription) -> None:
        """Insert with its index rows; AlreadyExists when the id is taken in the tenant."""
        sub, sql = subscription, self._sql

        def job(conn: sqlite3.Connection) -> None:
            if conn.execute(sql.exists, (tenant, sub.id)).fetchone():
                raise AlreadyExists(f"subscription {sub.id} already exists")
            cursor = conn.execute(sql.insert, (tenant, sub.id, _body(sub), *_columns(sub),
                                               sub.created_at, sub.modified_at))
            _index(conn, sql, tenant, int(cursor.lastrowid or 0), sub)
            conn.execute(_ADD_TENANT, (tenant, sub.created_at))

        await self.db.write(job)
        if self._on_new_tenant is not None:
            self._on_new_tenant(tenant)

    async def get(self, tenant: str, subscription_id: str) -> Subscription | None:
        """One subscription (a primary-key look-up on the calling thread)."""
        row = self.db.read_inline(
            lambda c: c.execute(self._sql.get, (tenant, subscription_id)).fetchone())
        return None if row is None else _decode(row)

    async def query(self, tenant: str, *, limit: int, offset: int = 0, count: bool = False
                    ) -> SubscriptionPage:
        """A page in creation order, and the count when asked for."""
        sql = self._sql

        def job(conn: sqlite3.Connection) -> SubscriptionPage:
            rows = conn.execute(sql.page, (tenant, limit, offset)).fetchall() if limit > 0 \
                else []
            total = conn.execute(sql.count, (tenant,)).fetchone()[0] if count else None
            return SubscriptionPage([_decode(r) for r in rows], total)

        return await self.db.read(job)

    async def update(self, tenant: str, subscription_id: str, fn: SubscriptionUpdate
                     ) -> Subscription:
        """Read, change and write back in one job of the writer; ResourceNotFound."""
        sql = self._sql

        def job(conn: sqlite3.Connection) -> Subscription:
            row = conn.execute(sql.lock, (tenant, subscription_id)).fetchone()
            if row is None:
                raise ResourceNotFound(f"subscription {subscription_id} not found")
            new = fn(_decode(row[1:]))
            conn.execute(sql.rewrite, (_body(new), *_columns(new), new.modified_at, row[0]))
            _index(conn, sql, tenant, row[0], new)
            return new

        return await self.db.write(job)

    async def delete(self, tenant: str, subscription_id: str) -> bool:
        """Delete (its index rows cascade)."""
        cursor = await self.db.write(lambda c: c.execute(self._sql.delete,
                                                         (tenant, subscription_id)))
        return bool(cursor.rowcount)

    async def record_notification(self, tenant: str, subscription_id: str,
                                  outcome: NotificationOutcome) -> bool:
        """Count one notification attempt; False when the subscription is gone."""
        ok, at = outcome.ok, outcome.at
        status = OK if ok else FAILED if outcome.final else None
        args = (0 if ok else 1, at, ok, at, ok, at, status, tenant, subscription_id)
        cursor = await self.db.write(lambda c: c.execute(self._sql.record, args))
        return bool(cursor.rowcount)

    async def record_notifications(self, tallies: Sequence[DeliveryTally]) -> None:
        """Add many subscriptions' attempts in one job of the writer."""
        rows = [(t.sent, t.failed, t.last_notification, t.last_success, t.last_failure,
                 t.last_status, t.tenant, t.subscription_id) for t in tallies]
        if rows:
            await self.db.write(lambda c: c.executemany(self._sql.tally, rows))

    async def active(self, now: str) -> list[tuple[str, Subscription]]:
        """Every tenant's subscriptions that are neither paused nor expired."""
        key = datetime_key(now) or now
        rows = await self.db.read(lambda c: c.execute(self._sql.active, (key,)).fetchall())
        return [(r[0], _decode(r[1:])) for r in rows]

    async def candidates(self, tenant: str, types: Sequence[str], attrs: Sequence[str],
                         now: str) -> list[Subscription]:
        """Active subscriptions about one of the types and one of the attributes (or any)."""
        args = (tenant, datetime_key(now) or now, tenant, json.dumps(list(types)), tenant,
                json.dumps(list(attrs)))
        rows = await self.db.read(lambda c: c.execute(self._sql.candidates, args).fetchall())
        return [_decode(r) for r in rows]


def _body(sub: Subscription) -> str:
    return json.dumps(to_record(sub), ensure_ascii=False)


def _columns(sub: Subscription) -> tuple[Any, ...]:
    """is_active, expires_key, time_interval."""
    return (1 if sub.active else 0, sub.expires_key, sub.time_interval)


def _index(conn: sqlite3.Connection, sql: _Sql, tenant: str, pk: int, sub: Subscription
           ) -> None:
    conn.execute(f"DELETE FROM {sql.types} WHERE pk = ?", (pk,))  # noqa: S608
    conn.execute(f"DELETE FROM {sql.attrs} WHERE pk = ?", (pk,))  # noqa: S608
    conn.executemany(f"INSERT INTO {sql.types} (pk, tenant, type) VALUES (?, ?, ?)",  # noqa: S608
                     [(pk, tenant, t) for t in sub.type_keys()])
    conn.executemany(f"INSERT INTO {sql.attrs} (pk, tenant, attr) VALUES (?, ?, ?)",  # noqa: S608
                     [(pk, tenant, a) for a in sub.attr_keys()])


def _decode(row: Sequence[Any]) -> Subscription:
    """A subscription from (body, times_sent, times_failed, last_*...) columns."""
    delivery = Delivery(times_sent=row[1], times_failed=row[2], last_notification=row[3],
                        last_success=row[4], last_failure=row[5], last_status=row[6])
    return from_record(json.loads(row[0]), delivery)
