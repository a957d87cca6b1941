"""The notification outbox on SQLite: tables of the entity store's file, written by its writer.

The journal adds one `notify_changes` row per write batch inside the batch's transaction (one
INSERT, skipped when the filter says no subscription can match). One process owns a SQLite
file, so claims are leases kept in memory (read on the writer thread, which finishes rows
too, so a claim never sees a row already finished): after a crash (or kill -9) every row is
claimable again at once, and a notification may be sent twice but is never lost.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from urbis.context.changes import decode_changes, encode_changes
from urbis.context.query.q import datetime_key
from urbis.context.subscription import Subscription
from urbis.storage.base import Applied, OutboxChange, OutboxFilter, PendingNotification
from urbis.storage.sqlite.db import Database
from urbis.storage.sqlite.subscriptions import _COLUMNS as COLUMNS
from urbis.storage.sqlite.subscriptions import _decode as decode

_INSERT = "INSERT INTO notify_changes (tenant, changes, created) VALUES (?, ?, ?)"
_CHANGES = ("SELECT seq, tenant, changes, created FROM notify_changes WHERE seq > ? "
            "ORDER BY seq LIMIT ?")
_AGAIN = "SELECT seq, tenant, changes, created FROM notify_changes WHERE seq IN ({})"
_RETRIES = ("SELECT seq, tenant, subscription_id, body, attempts, next_at, error "
            "FROM notify_retries WHERE next_at <= ? ORDER BY next_at LIMIT ?")
_ADD_RETRY = ("INSERT INTO notify_retries (tenant, subscription_id, body, attempts, next_at, "
              "error) VALUES (?, ?, ?, ?, ?, ?)")
_RESCHEDULE = "UPDATE notify_retries SET attempts = ?, next_at = ?, error = ? WHERE seq = ?"
_PERIODIC = (
    f"SELECT s.pk, s.tenant, s.time_interval, {COLUMNS} FROM subscriptions s "  # noqa: S608
    "WHERE s.time_interval IS NOT NULL AND s.is_active = 1 "
    "AND (s.expires_key IS NULL OR s.expires_key > ?) "
    "AND (s.periodic_next IS NULL OR s.periodic_next <= ?) ORDER BY s.pk LIMIT ?")
Journal = Callable[[sqlite3.Connection, str, list[Applied]], None]


class SqliteOutbox:
    """OutboxStore in the SQLite file of an entity store."""

    def __init__(self, db: Database, add_journal: Callable[[Journal], None]) -> None:
        self.db = db
        self._keep: OutboxFilter | None = None
        self._changes_leased: dict[int, float] = {}  # claimed, not finished: until when
        self._high = 0  # the highest seq claimed so far
        self._retries_leased: dict[int, float] = {}
        add_journal(self._journal)

    def set_filter(self, keep: OutboxFilter) -> None:
        """Record only the batches `keep` accepts."""
        self._keep = keep

    def _journal(self, conn: sqlite3.Connection, tenant: str, applied: list[Applied]) -> None:
        if self._keep is not None and not self._keep(tenant, applied):
            return
        data = encode_changes((a.entity_id, a.before, a.after) for a in applied)
        conn.execute(_INSERT, (tenant, data, time.time()))

    def journal_now(self, conn: sqlite3.Connection, tenant: str, applied: list[Applied]) -> None:
        """Record changes made outside mutate() (a purge by type) in the current transaction."""
        self._journal(conn, tenant, applied)

    async def claim_changes(self, limit: int, lease: float) -> list[OutboxChange]:
        """The next changes after the last claimed, and any whose lease ended, leased to us."""
        now = time.time()
        leased = self._changes_leased
        # leases have one duration: the dict's order (claim order) is their expiry order
        expired = [seq for seq, _ in itertools.takewhile(lambda kv: kv[1] <= now,
                                                         leased.items())][:limit]
        marks = ",".join("?" * len(expired))

        def job(conn: sqlite3.Connection) -> list[Any]:
            rows = conn.execute(_CHANGES, (self._high, limit)).fetchall()
            if expired:
                rows += conn.execute(_AGAIN.format(marks), expired).fetchall()
            return rows

        # on the writer: a reader's snapshot might still hold rows finished meanwhile
        rows = await self.db.write(job)
        out: list[OutboxChange] = []
        for seq, tenant, data, created in sorted(rows):
            leased.pop(seq, None)
            leased[seq] = now + lease
            self._high = max(self._high, seq)
            changes = [Applied(i, b, a) for i, b, a in decode_changes(data)]
            out.append(OutboxChange(seq, tenant, changes, created))
        for seq in expired:  # finished meanwhile: nothing to claim
            if leased.get(seq, now + 1) <= now:
                del leased[seq]
        return out

    async def finish_changes(self, seqs: Sequence[int],
                             retries: Sequence[PendingNotification]) -> list[int]:
        """Delete the changes and queue the retries in one transaction; the retries' seqs."""
        rows = [_retry_row(r) for r in retries]
        marks = ",".join("?" * len(seqs))

        def job(conn: sqlite3.Connection) -> list[int]:
            if seqs:
                conn.execute(f"DELETE FROM notify_changes WHERE seq IN ({marks})",  # noqa: S608
                             list(seqs))
            return [int(conn.execute(_ADD_RETRY, row).lastrowid or 0) for row in rows]

        added = await self.db.write(job) if seqs or rows else []
        for seq in seqs:
            self._changes_leased.pop(seq, None)
        return added

    async def claim_retries(self, limit: int, lease: float) -> list[PendingNotification]:
        """Retries due now, not leased, leased to the caller."""
        now = time.time()
        leased = _live(self._retries_leased, now)
        rows = await self.db.write(
            lambda c: c.execute(_RETRIES, (now, limit + len(leased))).fetchall())
        out: list[PendingNotification] = []
        for seq, tenant, sub_id, body, attempts, next_at, error in rows:
            if seq in leased or len(out) >= limit:
                continue
            leased[seq] = now + lease
            out.append(PendingNotification(tenant, sub_id, orjson.loads(body), attempts,
                                           next_at, error, seq))
        return out

    async def finish_retries(self, done: Sequence[int],
                             again: Sequence[PendingNotification]) -> None:
        """Delete the delivered (or given up) retries, reschedule the others."""
        marks = ",".join("?" * len(done))
        rows = [(r.attempts, r.next_at, r.error, r.seq) for r in again]

        def job(conn: sqlite3.Connection) -> None:
            if done:
                conn.execute(f"DELETE FROM notify_retries WHERE seq IN ({marks})",  # noqa: S608
                             list(done))
            if rows:
                conn.executemany(_RESCHEDULE, rows)

        if done or rows:
            await self.db.write(job)
        for seq in [*done, *(r.seq for r in again)]:
            self._retries_leased.pop(seq, None)

    async def claim_periodic(self, now: float, limit: int) -> list[tuple[str, Subscription]]:
        """Periodic subscriptions due now; their next run is set one interval ahead."""
        key = datetime_key(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))) or ""

        def job(conn: sqlite3.Connection) -> list[tuple[str, Subscription]]:
            rows = conn.execute(_PERIODIC, (key, now, limit)).fetchall()
            conn.executemany("UPDATE subscriptions SET periodic_next = ? WHERE pk = ?",
                             [(now + float(r[2]), r[0]) for r in rows])
            return [(r[1], decode(r[3:])) for r in rows]

        return await self.db.write(job)

    async def backlog(self) -> tuple[int, int]:
        """(changes, retries) waiting."""

        def job(conn: sqlite3.Connection) -> tuple[int, int]:
            changes = conn.execute("SELECT count(*) FROM notify_changes").fetchone()[0]
            retries = conn.execute("SELECT count(*) FROM notify_retries").fetchone()[0]
            return int(changes), int(retries)

        return await self.db.read(job)


def _live(leases: dict[int, float], now: float) -> dict[int, float]:
    """Drop the leases that ended; the same dict."""
    for seq in [s for s, until in leases.items() if until <= now]:
        del leases[seq]
    return leases


def _retry_row(r: PendingNotification) -> tuple[object, ...]:
    return (r.tenant, r.subscription_id, orjson.dumps(r.body), r.attempts, r.next_at, r.error)

