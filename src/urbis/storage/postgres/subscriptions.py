"""SubscriptionStore on PostgreSQL: the `subscriptions` tables, on the entity store's pool.

Each write is one transaction; an update locks the row (`FOR UPDATE`) for its
read-modify-write, so concurrent updates of one subscription by several workers apply one
after the other. Writes are not retried on a lost connection (the outcome of a COMMIT that
got no answer is unknown); reads are, once. The same store keeps the subscriptions to context
source registrations in tables of the same shape (`prefix="csource_"`, announced on their own
topic).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from urbis.context.errors import AlreadyExists, BadRequestData, ResourceNotFound
from urbis.context.query.q import datetime_key
from urbis.context.subscription import FAILED, OK, Delivery, Subscription, from_record, to_record
from urbis.storage.base import (
    TOPIC_SUBSCRIPTIONS,
    DeliveryTally,
    NotificationOutcome,
    SubscriptionPage,
    SubscriptionUpdate,
)
from urbis.storage.postgres.db import Database
from urbis.storage.postgres.notify import announce

_COLUMNS = ("s.body, s.times_sent, s.times_failed, s.last_notification, s.last_success, "
            "s.last_failure, s.last_status")
_LIVE = "s.is_active AND (s.expires_key IS NULL OR s.expires_key > $1)"
_GET = f"SELECT {_COLUMNS} FROM subscriptions s WHERE s.tenant = $1 AND s.id = $2"  # noqa: S608
_LOCK = (f"SELECT s.pk, {_COLUMNS} FROM subscriptions s "  # noqa: S608
         "WHERE s.tenant = $1 AND s.id = $2 FOR UPDATE")
_PAGE = (f"SELECT {_COLUMNS} FROM subscriptions s WHERE s.tenant = $1 "  # noqa: S608
         "ORDER BY s.pk LIMIT $2 OFFSET $3")
_COUNT = "SELECT count(*) FROM subscriptions WHERE tenant = $1"
_ACTIVE = f"SELECT s.tenant, {_COLUMNS} FROM subscriptions s WHERE {_LIVE} ORDER BY s.pk"  # noqa: S608
_CANDIDATES = (
    f"SELECT {_COLUMNS} FROM subscriptions s WHERE s.tenant = $2 AND {_LIVE} "  # noqa: S608
    "AND s.pk IN (SELECT pk FROM subscription_types WHERE tenant = $2 AND "
    "(type IS NULL OR type = ANY($3::text[]))) "
    "AND s.pk IN (SELECT pk FROM subscription_attrs WHERE tenant = $2 AND "
    "(attr IS NULL OR attr = ANY($4::text[]))) ORDER BY s.pk")
_INSERT = ("INSERT INTO subscriptions (tenant, id, body, is_active, expires_key, time_interval, "
           "created_at, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
           "ON CONFLICT (tenant, id) DO NOTHING RETURNING pk")
_REWRITE = ("UPDATE subscriptions SET body = $1, is_active = $2, expires_key = $3, "
            "time_interval = $4, modified_at = $5 WHERE pk = $6")
_DELETE = "DELETE FROM subscriptions WHERE tenant = $1 AND id = $2"
_RECORD = (
    "UPDATE subscriptions SET times_sent = times_sent + 1, "
    "times_failed = times_failed + CASE WHEN $1 THEN 0 ELSE 1 END, last_notification = $2, "
    "last_success = CASE WHEN $1 THEN $2 ELSE last_success END, "
    "last_failure = CASE WHEN $1 THEN last_failure ELSE $2 END, "
    "last_status = coalesce($3, last_status) WHERE tenant = $4 AND id = $5")
_TALLY = (
    "UPDATE subscriptions s SET times_sent = s.times_sent + t.sent, "
    "times_failed = s.times_failed + t.failed, "
    "last_notification = coalesce(t.last_notification, s.last_notification), "
    "last_success = coalesce(t.last_success, s.last_success), "
    "last_failure = coalesce(t.last_failure, s.last_failure), "
    "last_status = coalesce(t.last_status, s.last_status) "
    "FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], "
    "$7::text[], $8::text[]) AS t(tenant, id, sent, failed, last_notification, last_success, "
    "last_failure, last_status) WHERE s.tenant = t.tenant AND s.id = t.id")
_TYPES = ("INSERT INTO subscription_types (pk, tenant, type) "
          "SELECT $1, $2, unnest($3::text[])")
_ATTRS = ("INSERT INTO subscription_attrs (pk, tenant, attr) "
          "SELECT $1, $2, unnest($3::text[])")
_ADD_TENANT = "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING"
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_TABLE = re.compile(r"\b(subscriptions|subscription_types|subscription_attrs)\b")


@dataclass(frozen=True, slots=True)
class _Sql:
    """The statements of one set of subscription tables."""

    get: str = _GET
    lock: str = _LOCK
    page: str = _PAGE
    count: str = _COUNT
    active: str = _ACTIVE
    candidates: str = _CANDIDATES
    insert: str = _INSERT
    rewrite: str = _REWRITE
    delete: str = _DELETE
    record: str = _RECORD
    tally: str = _TALLY
    types: str = _TYPES
    attrs: str = _ATTRS
    clear_types: str = "DELETE FROM subscription_types WHERE pk = $1"
    clear_attrs: str = "DELETE FROM subscription_attrs WHERE pk = $1"

    @classmethod
    def of(cls, prefix: str) -> _Sql:
        """The statements with every table name prefixed."""
        fields = {name: _TABLE.sub(lambda m: prefix + m.group(1), getattr(cls(), name))
                  for name in cls.__dataclass_fields__}
        return cls(**fields)


class PostgresSubscriptionStore:
    """Subscriptions in PostgreSQL, sharing the entity store's pool and schema."""

    def __init__(self, database: Database, *, prefix: str = "",
                 topic: str = TOPIC_SUBSCRIPTIONS) -> None:
        self.db = database
        self._sql = _Sql.of(prefix)
        self._topic = topic

    async def open(self) -> None:
        """Nothing to do: the entity store opens (and migrates) the shared pool."""

    async def close(self) -> None:
        """Nothing to do: the entity store closes the shared pool."""

    async def tenant_exists(self, tenant: str) -> bool:
        """A tenant exists from its first write (an entity or a subscription)."""
        if "\x00" in tenant:
            return False
        found = await self.db.run(
            lambda conn: conn.fetchval("SELECT 1 FROM tenants WHERE name = $1", tenant))
        return bool(found)

    async def create(self, tenant: str, subscription: Subscription) -> None:
        """Insert with its index rows; AlreadyExists when the id is taken in the tenant."""
        sub, sql = subscription, self._sql
        body = _body(sub)
        _check_text(tenant, sub.id)

        async def job(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                pk = await conn.fetchval(sql.insert, tenant, sub.id, body, *_columns(sub),
                                         sub.created_at, sub.modified_at)
                if pk is None:
                    raise AlreadyExists(f"subscription {sub.id} already exists")
                await _index(conn, sql, tenant, pk, sub)
                await conn.execute(_ADD_TENANT, tenant, sub.created_at)
                await announce(conn, self._topic, tenant)

        await self.db.run(job, retry=False)

    async def get(self, tenant: str, subscription_id: str) -> Subscription | None:
        """One subscription by id (an index look-up)."""
        if "\x00" in tenant or "\x00" in subscription_id:
            return None
        row = await self.db.run(
            lambda conn: conn.fetchrow(self._sql.get, tenant, subscription_id))
        return None if row is None else _decode(row)

    async def query(self, tenant: str, *, limit: int, offset: int = 0, count: bool = False
                    ) -> SubscriptionPage:
        """A page in creation order, and the count when asked for (one snapshot)."""
        if "\x00" in tenant:
            return SubscriptionPage([], 0 if count else None)
        sql = self._sql

        async def job(conn: asyncpg.Connection) -> SubscriptionPage:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows = await conn.fetch(sql.page, tenant, limit, offset) if limit > 0 else []
                total = await conn.fetchval(sql.count, tenant) if count else None
            return SubscriptionPage([_decode(r) for r in rows], total)

        return await self.db.run(job)

    async def update(self, tenant: str, subscription_id: str, fn: SubscriptionUpdate
                     ) -> Subscription:
        """Lock, change and write back in one transaction; ResourceNotFound."""
        missing = ResourceNotFound(f"subscription {subscription_id} not found")
        if "\x00" in tenant or "\x00" in subscription_id:
            raise missing
        sql = self._sql

        async def job(conn: asyncpg.Connection) -> Subscription:
            async with conn.transaction():
                row = await conn.fetchrow(sql.lock, tenant, subscription_id)
                if row is None:
                    raise missing
                new = fn(_decode(row[1:]))
                await conn.execute(sql.rewrite, _body(new), *_columns(new), new.modified_at,
                                   row[0])
                await _index(conn, sql, tenant, row[0], new)
                await announce(conn, self._topic, tenant)
            return new

        return await self.db.run(job, retry=False)

    async def delete(self, tenant: str, subscription_id: str) -> bool:
        """Delete (its index rows cascade)."""
        if "\x00" in tenant or "\x00" in subscription_id:
            return False

        async def job(conn: asyncpg.Connection) -> str:
            async with conn.transaction():
                status: str = await conn.execute(self._sql.delete, tenant, subscription_id)
                await announce(conn, self._topic, tenant)
            return status

        return await self.db.run(job, retry=False) != "DELETE 0"

    async def record_notification(self, tenant: str, subscription_id: str,
                                  outcome: NotificationOutcome) -> bool:
        """Count one notification attempt; False when the subscription is gone."""
        if "\x00" in tenant or "\x00" in subscription_id:
            return False
        status = await self.db.run(lambda conn: conn.execute(
            self._sql.record, outcome.ok, outcome.at,
            OK if outcome.ok else FAILED if outcome.final else None, tenant,
            subscription_id), retry=False)
        return status != "UPDATE 0"

    async def record_notifications(self, tallies: Sequence[DeliveryTally]) -> None:
        """Add many subscriptions' attempts in one statement."""
        keep = [t for t in tallies if "\x00" not in t.tenant + t.subscription_id]
        if not keep:
            return
        columns = [[getattr(t, name) for t in keep] for name in (
            "tenant", "subscription_id", "sent", "failed", "last_notification",
            "last_success", "last_failure", "last_status")]
        await self.db.run(lambda conn: conn.execute(self._sql.tally, *columns), retry=False)

    async def active(self, now: str) -> list[tuple[str, Subscription]]:
        """Every tenant's subscriptions that are neither paused nor expired."""
        key = datetime_key(now) or now
        rows = await self.db.run(lambda conn: conn.fetch(self._sql.active, key))
        return [(r[0], _decode(r[1:])) for r in rows]

    async def candidates(self, tenant: str, types: Sequence[str], attrs: Sequence[str],
                         now: str) -> list[Subscription]:
        """Active subscriptions about one of the types and one of the attributes (or any)."""
        if "\x00" in tenant:
            return []
        args = (datetime_key(now) or now, tenant, [t for t in types if "\x00" not in t],
                [a for a in attrs if "\x00" not in a])
        rows = await self.db.run(lambda conn: conn.fetch(self._sql.candidates, *args))
        return [_decode(r) for r in rows]


def _body(sub: Subscription) -> bytes:
    """The jsonb document; BadRequestData for text PostgreSQL cannot store (U+0000)."""
    body = orjson.dumps(to_record(sub))
    if b"\\u0000" in body and _NUL.search(body):
        raise BadRequestData(f"subscription {sub.id!r:.100} cannot be stored: text shall not "
                             "contain the character U+0000")
    return body


def _check_text(*texts: str) -> None:
    if any("\x00" in t for t in texts):
        raise BadRequestData("text shall not contain the character U+0000")


def _columns(sub: Subscription) -> tuple[Any, ...]:
    """is_active, expires_key, time_interval."""
    interval = None if sub.time_interval is None else float(sub.time_interval)
    return (sub.active, sub.expires_key, interval)


async def _index(conn: asyncpg.Connection, sql: _Sql, tenant: str, pk: int, sub: Subscription
                 ) -> None:
    await conn.execute(sql.clear_types, pk)
    await conn.execute(sql.clear_attrs, pk)
    await conn.execute(sql.types, pk, tenant, sub.type_keys())
    attrs = sub.attr_keys()
    if attrs:
        await conn.execute(sql.attrs, pk, tenant, attrs)


def _decode(row: Sequence[Any]) -> Subscription:
    """A subscription from (body, times_sent, times_failed, last_*...) columns."""
    delivery = Delivery(times_sent=row[1], times_failed=row[2], last_notification=row[3],
                        last_success=row[4], last_failure=row[5], last_status=row[6])
    return from_record(row[0], delivery)
