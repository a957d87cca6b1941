"""The notification outbox on PostgreSQL, shared by every worker of the database.

The journal adds one `notify_changes` row per write batch inside the batch's transaction (one
INSERT, skipped when the filter says no subscription can match). Workers claim rows with
`FOR UPDATE SKIP LOCKED` and a lease (`lease_until`, or `next_at` pushed ahead for retries):
a row is handed to one worker at a time, and to another once the lease has ended without the
row being finished (its worker died), so every notification is attempted at least once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import asyncpg
import orjson

from urbis.context.changes import decode_changes, encode_changes
from urbis.context.query.q import datetime_key
from urbis.context.subscription import Subscription
from urbis.storage.base import Applied, OutboxChange, OutboxFilter, PendingNotification
from urbis.storage.postgres.db import Database
from urbis.storage.postgres.mutations import PgJournal
from urbis.storage.postgres.subscriptions import _COLUMNS as COLUMNS
from urbis.storage.postgres.subscriptions import _decode as decode

_INSERT = "INSERT INTO notify_changes (tenant, changes, created) VALUES ($1, $2, $3)"
_CLAIM = (
    "UPDATE notify_changes SET lease_until = $1 + $2 WHERE seq IN ("
    "SELECT seq FROM notify_changes WHERE lease_until <= $1 ORDER BY seq LIMIT $3 "
    "FOR UPDATE SKIP LOCKED) RETURNING seq, tenant, changes, created")
_DELETE = "DELETE FROM notify_changes WHERE seq = ANY($1::bigint[])"
_NEXT_SEQS = ("SELECT nextval(pg_get_serial_sequence('notify_retries', 'seq')) "
              "FROM generate_series(1, $1)")
_ADD_RETRIES = (
    "INSERT INTO notify_retries (seq, tenant, subscription_id, body, attempts, next_at, error) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bytea[], $5::int[], "
    "$6::float8[], $7::text[])")
_CLAIM_RETRIES = (
    "UPDATE notify_retries SET next_at = $1 + $2 WHERE seq IN ("
    "SELECT seq FROM notify_retries WHERE next_at <= $1 ORDER BY next_at LIMIT $3 "
    "FOR UPDATE SKIP LOCKED) "
    "RETURNING seq, tenant, subscription_id, body, attempts, next_at, error")
_DELETE_RETRIES = "DELETE FROM notify_retries WHERE seq = ANY($1::bigint[])"
_RESCHEDULE = (
    "UPDATE notify_retries r SET attempts = u.attempts, next_at = u.next_at, error = u.error "
    "FROM unnest($1::bigint[], $2::int[], $3::float8[], $4::text[]) "
    "AS u(seq, attempts, next_at, error) WHERE r.seq = u.seq")
_PERIODIC = (
    "UPDATE subscriptions s SET periodic_next = $2 + s.time_interval FROM ("  # noqa: S608
    "SELECT pk FROM subscriptions WHERE time_interval IS NOT NULL AND is_active "
    "AND (expires_key IS NULL OR expires_key > $1) "
    "AND (periodic_next IS NULL OR periodic_next <= $2) ORDER BY pk LIMIT $3 "
    f"FOR UPDATE SKIP LOCKED) due WHERE s.pk = due.pk RETURNING s.tenant, {COLUMNS}")


class PostgresOutbox:
    """OutboxStore in PostgreSQL, on the entity store's pool."""

    def __init__(self, db: Database, add_journal: Callable[[PgJournal], None]) -> None:
        self.db = db
        self._keep: OutboxFilter | None = None
        add_journal(self._journal)

    def set_filter(self, keep: OutboxFilter) -> None:
        """Record only the batches `keep` accepts."""
        self._keep = keep

    async def _journal(self, conn: asyncpg.Connection, tenant: str, applied: list[Applied]
                       ) -> None:
        if self._keep is not None and not self._keep(tenant, applied):
            return
        data = encode_changes((a.entity_id, a.before, a.after) for a in applied)
        await conn.execute(_INSERT, tenant, data, time.time())

    async def claim_changes(self, limit: int, lease: float) -> list[OutboxChange]:
        """The oldest unclaimed (or lease-expired) changes, leased to this worker."""
        rows = await self.db.run(lambda c: c.fetch(_CLAIM, time.time(), lease, limit))
        rows = sorted(rows, key=lambda r: r[0])
        return [OutboxChange(seq, tenant, [Applied(*t) for t in decode_changes(data)], created)
                for seq, tenant, data, created in rows]

    async def finish_changes(self, seqs: Sequence[int],
                             retries: Sequence[PendingNotification]) -> list[int]:
        """Delete the changes and queue the retries in one transaction; the retries' seqs."""
        if not seqs and not retries:
            return []
        columns = [[r.tenant for r in retries], [r.subscription_id for r in retries],
                   [orjson.dumps(r.body) for r in retries], [r.attempts for r in retries],
                   [r.next_at for r in retries], [r.error for r in retries]]

        async def job(conn: asyncpg.Connection) -> list[int]:
            async with conn.transaction():
                if seqs:
                    await conn.execute(_DELETE, list(seqs))
                if not retries:
                    return []
                # seqs drawn first, so that each retry's seq is known in order
                added = [r[0] for r in await conn.fetch(_NEXT_SEQS, len(retries))]
                await conn.execute(_ADD_RETRIES, added, *columns)
                return added

        return await self.db.run(job, retry=False)

    async def claim_retries(self, limit: int, lease: float) -> list[PendingNotification]:
        """Retries due now, leased to this worker by pushing their next_at ahead."""
        rows = await self.db.run(lambda c: c.fetch(_CLAIM_RETRIES, time.time(), lease, limit))
        return [PendingNotification(tenant, sub_id, orjson.loads(body), attempts, next_at, error,
                                    seq)
                for seq, tenant, sub_id, body, attempts, next_at, error in rows]

    async def finish_retries(self, done: Sequence[int],
                             again: Sequence[PendingNotification]) -> None:
        """Delete the delivered (or given up) retries, reschedule the others."""

        async def job(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                if done:
                    await conn.execute(_DELETE_RETRIES, list(done))
                if again:
                    await conn.execute(_RESCHEDULE, [r.seq for r in again],
                                       [r.attempts for r in again],
                                       [r.next_at for r in again], [r.error for r in again])

        if done or again:
            await self.db.run(job, retry=False)

    async def claim_periodic(self, now: float, limit: int) -> list[tuple[str, Subscription]]:
        """Periodic subscriptions due now; one worker gets each, its next run one interval on."""
        key = datetime_key(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))) or ""
        rows = await self.db.run(lambda c: c.fetch(_PERIODIC, key, now, limit), retry=False)
        return [(r[0], decode(r[1:])) for r in rows]

    async def backlog(self) -> tuple[int, int]:
        """(changes, retries) waiting."""

        async def job(conn: asyncpg.Connection) -> tuple[int, int]:
            changes = await conn.fetchval("SELECT count(*) FROM notify_changes")
            retries = await conn.fetchval("SELECT count(*) FROM notify_retries")
            return int(changes), int(retries)

        return await self.db.run(job)
