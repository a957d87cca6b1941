"""The SQLite TemporalStore: entity histories in the embedded store's file.

Writes run on the writer thread. Entity changes reach it through `journal` (registered with
the entity store, inside the batch's transaction), which only adds the batch's changes to
`temporal_pending`: one INSERT, so that history costs a write request next to nothing. They
become instances in bulk (`settle`): in the background, and before anything reads or changes
a history, so every acknowledged change is in the answer of the next temporal request. A
settle is a handful of set-at-a-time statements per tenant: upsert the entity rows, look up
their keys and series, insert the series that are new, insert every instance with one
executemany. Pending rows and the instances made of them commit together, so a crash
loses nothing and records nothing twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from urbis.context.changes import decode_changes, encode_changes
from urbis.context.model import Entity, Instance, now_iso
from urbis.context.temporal import from_micros, to_micros
from urbis.context.temporal_records import Record, changes, merge_stored, numeric, record_of
from urbis.storage.base import Applied
from urbis.storage.sqlite import temporal_rollup
from urbis.storage.sqlite.db import Database
from urbis.storage.sqlite.temporal_read import run_query
from urbis.storage.temporal_base import Retention, TemporalPage, TemporalQuery

log = logging.getLogger(__name__)
T = TypeVar("T")
CHUNK = 400
SMALL = 16
_UPSERT = (
    "INSERT INTO temporal_entities (tenant, id, types, scopes, created_at, modified_at, "
    "deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, id) DO UPDATE SET "
    "types = excluded.types, scopes = excluded.scopes, modified_at = excluded.modified_at, "
    "deleted_at = excluded.deleted_at")
_INSERT = ("INSERT INTO temporal_instances (sid, observed_at, created_at, modified_at, num, "
           "deleted_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)")
_TPK = "SELECT tpk FROM temporal_entities WHERE tenant = ? AND id = ?"
_PEND = "INSERT INTO temporal_pending (tenant, at, size, changes) VALUES (?, ?, ?, ?)"
_PENDING = "SELECT seq, tenant, at, size, changes FROM temporal_pending ORDER BY seq LIMIT ?"
_BACKLOG = "SELECT count(*), sum(size) FROM temporal_pending"
SETTLE_ROWS = 64  # pending rows (write batches) per settle step
SETTLE_CHANGES = 2000  # ... and at most about this many entity changes


def now_micros() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def _marks(n: int) -> str:
    return ",".join("?" * n)


@dataclass(slots=True)
class Item:
    """One entity of a batch to record: its state, deletion time, new instances, and whether
    its entity row (types, scopes, existence) must be written."""

    entity: Entity
    deleted: str | None
    records: Sequence[Record]
    upsert: bool = True


def write(conn: sqlite3.Connection, tenant: str, batch: Sequence[Item], report: bool = False
          ) -> list[bool]:
    """Record entities and their new instances.

    With `report`, returns per entity whether its history is new (else an empty list).
    """
    if not report and len(batch) == 1 and _fast(conn, tenant, batch[0]):
        return []
    ids = list(dict.fromkeys(i.entity.id for i in batch))
    known = _tpks(conn, tenant, ids) if report else {}
    tpks = {} if report else _tpks(conn, tenant, [i.entity.id for i in batch if not i.upsert])
    rows = [_entity_row(tenant, i.entity, i.deleted) for i in batch
            if i.upsert or i.entity.id not in tpks]
    if len(rows) <= SMALL:  # most batches: one entity, its key returned by the upsert
        tpks.update((row[1], conn.execute(_UPSERT + " RETURNING tpk", row).fetchone()[0])
                    for row in rows)
    else:
        conn.executemany(_UPSERT, rows)
        tpks.update(_tpks(conn, tenant, list(dict.fromkeys(row[1] for row in rows))))
    keys = [(tpks[i.entity.id], r.attr, r.dataset_id or "") for i in batch for r in i.records]
    series = _series(conn, set(keys))
    records = [r for i in batch for r in i.records]
    _insert(conn, [(series[k], *_instance_row(r)) for k, r in zip(keys, records, strict=True)])
    return [i.entity.id not in known for i in batch] if report else []


_FAST = ("SELECT s.sid FROM temporal_entities te JOIN temporal_series s ON s.tpk = te.tpk "
         "AND s.attr = ? AND s.dataset_id = ? WHERE te.tenant = ? AND te.id = ?")


def _fast(conn: sqlite3.Connection, tenant: str, item: Item) -> bool:
    """One instance of a known series and nothing else (a PATCH): one look-up, two writes."""
    if item.upsert or len(item.records) != 1:
        return False
    rec = item.records[0]
    row = conn.execute(_FAST, (rec.attr, rec.dataset_id or "", tenant, item.entity.id)
                       ).fetchone()
    if row is None:
        return False
    _insert(conn, [(row[0], *_instance_row(rec))])
    return True


def _insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        conn.executemany(_INSERT, rows)
        temporal_rollup.add(conn, [(r[0], r[1], r[4]) for r in rows if r[5] is None])


def _tpks(conn: sqlite3.Connection, tenant: str, ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        sql = ("SELECT id, tpk FROM temporal_entities WHERE tenant = ? "  # noqa: S608
               f"AND id IN ({_marks(len(chunk))})")
        found.update(conn.execute(sql, [tenant, *chunk]).fetchall())
    return found


def _series(conn: sqlite3.Connection, wanted: set[tuple[int, str, str]]
            ) -> dict[tuple[int, str, str], int]:
    found: dict[tuple[int, str, str], int] = {}
    if len(wanted) <= SMALL:
        for key in wanted:
            row = conn.execute("SELECT sid FROM temporal_series WHERE tpk = ? AND attr = ? "
                               "AND dataset_id = ?", key).fetchone()
            if row is not None:
                found[key] = row[0]
    else:
        tpks = sorted({w[0] for w in wanted})
        for start in range(0, len(tpks), CHUNK):
            chunk = tpks[start:start + CHUNK]
            sql = ("SELECT tpk, attr, dataset_id, sid FROM temporal_series "  # noqa: S608
                   f"WHERE tpk IN ({_marks(len(chunk))})")
            for tpk, attr, ds, sid in conn.execute(sql, chunk):
                found[(tpk, attr, ds)] = sid
    for key in sorted(wanted - found.keys()):
        cur = conn.execute("INSERT INTO temporal_series (tpk, attr, dataset_id) VALUES (?, ?, ?)",
                           key)
        assert cur.lastrowid is not None
        found[key] = cur.lastrowid
    return found


def journal_items(applied: Sequence[Applied], now: int) -> list[Item]:
    """What a batch of entity changes adds to their histories."""
    items = []
    for change in applied:
        before, after = change.before, change.after
        current = after if after is not None else before
        assert current is not None
        same = before is not None and after is not None and before.types == after.types \
            and before.scopes == after.scopes
        items.append(Item(current, None if after is not None else from_micros(now),
                          changes(before, after, now), upsert=not same))
    return items


def settle_step(conn: sqlite3.Connection, rows: int = SETTLE_ROWS,
                most: int = SETTLE_CHANGES) -> int:
    """Turn the oldest pending changes into instances; how many rows were settled."""
    found = conn.execute(_PENDING, (rows,)).fetchall()
    taken, count = [], 0
    for row in found:
        taken.append(row)
        count += row[3]
        if count >= most:
            break
    if not taken:
        return 0
    try:
        _settled(conn, taken)
    except sqlite3.OperationalError:
        raise  # the database itself (locked, full, I/O): try again later
    except Exception:  # one bad batch must not hold up every history: write them one by one
        for row in taken:
            try:
                _settled(conn, [row])
            except sqlite3.OperationalError:
                raise
            except Exception:
                log.exception("history: journaled batch %s of tenant %s cannot be recorded; "
                              "dropped", row[0], row[1])
    conn.execute("DELETE FROM temporal_pending WHERE seq <= ?", (taken[-1][0],))
    return len(taken)


def _settled(conn: sqlite3.Connection, rows: Sequence[Any]) -> None:
    """Write some pending rows into histories, all or nothing (a savepoint)."""
    groups: list[tuple[str, list[Item]]] = []
    for _, tenant, at, _size, data in rows:
        items = journal_items([Applied(*c) for c in decode_changes(data)], at)
        if groups and groups[-1][0] == tenant:
            groups[-1][1].extend(items)
        else:
            groups.append((tenant, items))
    conn.execute("SAVEPOINT settle")
    try:
        for tenant, items in groups:
            write(conn, tenant, items)
    except BaseException:
        conn.execute("ROLLBACK TO settle")
        conn.execute("RELEASE settle")
        raise
    conn.execute("RELEASE settle")


def _entity_row(tenant: str, entity: Entity, deleted: str | None) -> tuple[Any, ...]:
    now = entity.modified_at or now_iso()
    return (tenant, entity.id, orjson.dumps(entity.types).decode(),
            orjson.dumps(entity.scopes).decode() if entity.scopes else None,
            entity.created_at or now, deleted or now, deleted)


def _instance_row(r: Record) -> tuple[Any, ...]:
    return (r.observed_at, r.recorded_at, r.recorded_at,
            None if r.deleted else numeric(r.instance),
            r.recorded_at if r.deleted else None, orjson.dumps(r.instance).decode())


class SqliteTemporalStore:
    """TemporalStore over the embedded store's SQLite file (its writer and readers)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pending = True  # pending rows may exist (set and cleared on the writer thread)

    def journal(self, conn: sqlite3.Connection, tenant: str, applied: list[Applied]) -> None:
        """The entity store's journal: keep the batch's changes for `settle`, in its
        transaction."""
        data = encode_changes((a.entity_id, a.before, a.after) for a in applied)
        conn.execute(_PEND, (tenant, now_micros(), len(applied), data))
        self.pending = True

    def _settle_all(self, conn: sqlite3.Connection) -> None:
        """On the writer: settle everything pending (before a history is read or changed)."""
        if self.pending:
            self.pending = False
            while settle_step(conn):
                pass

    async def backlog(self) -> tuple[int, int]:
        """(write batches, entity changes) journaled and not yet settled."""
        row = await self.db.read(lambda conn: conn.execute(_BACKLOG).fetchone())
        return int(row[0]), int(row[1] or 0)

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run a job on the writer once every pending change is in the histories."""

        def settled(conn: sqlite3.Connection) -> T:
            self._settle_all(conn)
            return job(conn)

        return await self.db.write(settled)

    async def settle(self, limit: int = SETTLE_ROWS) -> int:
        """Settle some pending changes (the background task); how many rows were settled."""
        if not self.pending:
            return 0

        def job(conn: sqlite3.Connection) -> int:
            done = settle_step(conn, limit)
            if done < limit:
                self.pending = conn.execute(
                    "SELECT 1 FROM temporal_pending LIMIT 1").fetchone() is not None
            return done

        return await self.db.write(job)

    async def add(self, tenant: str, entity: Entity, records: Sequence[Record], now: str
                  ) -> bool:
        """Record an entity's types/scopes and the given instances (the temporal API)."""
        entity.modified_at = now
        entity.created_at = entity.created_at or now
        [created] = await self._write(lambda conn: write(conn, tenant,
                                                           [Item(entity, None, records)], True))
        return created

    async def query(self, tenant: str, query: TemporalQuery) -> TemporalPage:
        """Histories of matching entities (see temporal_read)."""
        if self.pending:
            await self.db.write(self._settle_all)
        return await self.db.read(lambda conn: run_query(conn, tenant, query))

    async def delete_entity(self, tenant: str, entity_id: str) -> bool:
        """Forget an entity's history (its series and instances cascade)."""

        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM temporal_entities WHERE tenant = ? AND id = ?",
                               (tenant, entity_id))
            return cur.rowcount > 0

        return await self._write(job)

    async def delete_attr(self, tenant: str, entity_id: str, attr: str,
                          dataset_id: str | None, delete_all: bool) -> bool:
        """Forget an attribute's series (one datasetId, or all with delete_all)."""
        sql = f"DELETE FROM temporal_series WHERE tpk = ({_TPK}) AND attr = ?"  # noqa: S608
        params: list[Any] = [tenant, entity_id, attr]
        if not delete_all:
            sql += " AND dataset_id = ?"
            params.append(dataset_id or "")

        return await self._write(lambda conn: conn.execute(sql, params).rowcount > 0)

    async def modify_instance(self, tenant: str, entity_id: str, attr: str, key: int,
                              instance: Instance, now: str) -> bool:
        """Merge new members into one stored instance (its series stays the same)."""
        when = to_micros(now)

        def job(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT i.body, i.observed_at, i.created_at, i.sid FROM temporal_instances i JOIN "  # noqa: S608
                f"temporal_series s ON s.sid = i.sid WHERE s.tpk = ({_TPK}) "
                "AND s.attr = ? AND i.ipk = ? AND i.deleted_at IS NULL",
                (tenant, entity_id, attr, key)).fetchone()
            if row is None:
                return False
            merged = merge_stored(orjson.loads(row[0]), instance)
            rec = record_of(attr, merged, row[2])
            observed = rec.observed_at if "observedAt" in merged else row[1]
            conn.execute("UPDATE temporal_instances SET body = ?, observed_at = ?, num = ?, "
                         "modified_at = ? WHERE ipk = ?",
                         (orjson.dumps(rec.instance).decode(), observed, numeric(rec.instance),
                          when, key))
            temporal_rollup.recompute(conn, [(row[3], row[1]), (row[3], observed)])
            return True

        return await self._write(job)

    async def delete_instance(self, tenant: str, entity_id: str, attr: str, key: int) -> bool:
        """Delete one instance of an entity's attribute."""
        sql = ("DELETE FROM temporal_instances WHERE ipk = ? AND sid IN (SELECT sid FROM "  # noqa: S608
               f"temporal_series WHERE tpk = ({_TPK}) AND attr = ?) RETURNING sid, observed_at")

        def job(conn: sqlite3.Connection) -> bool:
            gone = conn.execute(sql, (key, tenant, entity_id, attr)).fetchall()
            temporal_rollup.recompute(conn, gone)
            return bool(gone)

        return await self._write(job)

    async def expire(self, retention: Retention, now: int, batch: int = 5000) -> int:
        """Delete up to `batch` instances observed before their entity's retention period."""
        keep, params = _retention_sql(retention)
        sql = ("DELETE FROM temporal_instances WHERE ipk IN (SELECT i.ipk FROM "  # noqa: S608
               "temporal_entities te JOIN temporal_series s ON s.tpk = te.tpk JOIN "
               f"temporal_instances i ON i.sid = s.sid AND i.observed_at < ? - {keep} LIMIT ?) "
               "RETURNING sid, observed_at")

        def job(conn: sqlite3.Connection) -> int:
            gone = conn.execute(sql, [now, *params, batch]).fetchall()
            temporal_rollup.recompute(conn, gone)
            return len(gone)

        return await self._write(job)


def _retention_sql(retention: Retention) -> tuple[str, list[Any]]:
    if not retention.by_type:
        return "?", [retention.default]
    cases = " ".join("WHEN ? THEN ?" for _ in retention.by_type)
    params: list[Any] = [v for item in retention.by_type.items() for v in item]
    return (f"coalesce((SELECT max(CASE j.value {cases} END) FROM json_each(te.types) j), ?)",  # noqa: S608
            [*params, retention.default])
