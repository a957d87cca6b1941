"""The PostgreSQL TemporalStore: entity histories next to the entities.

Entity changes reach it through `journal`, awaited inside the entity batch's transaction: one
INSERT of the batch's changes into `temporal_pending`, a plain write that joins the entity
write's own statement on the two-round-trip path (urbis.storage.postgres.single). They become
instances in bulk (`settle`), by one worker at a time (a transaction-level advisory lock, so
histories are written in the order of the changes), in the background and before anything
reads or changes a history. Every history write is one statement (data-modifying CTEs over
unnest()ed arrays): upsert the entities' history rows, upsert their series, insert the
instances and add them to the hourly rollups. The temporal API writes through the pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from urbis.context.changes import decode_changes, encode_changes
from urbis.context.errors import BadRequestData
from urbis.context.model import Entity, Instance, now_iso
from urbis.context.temporal import from_micros, to_micros
from urbis.context.temporal_records import Record, changes, merge_stored, numeric, record_of
from urbis.storage.base import Applied
from urbis.storage.postgres.db import CONNECTION_ERRORS, Database
from urbis.storage.postgres.temporal_read import run_query
from urbis.storage.postgres.temporal_rollup import ADD_CTE, recompute
from urbis.storage.temporal_base import Retention, TemporalPage, TemporalQuery

WRITE = """
WITH ent AS (
    INSERT INTO temporal_entities AS t (tenant, id, types, scopes, created_at, modified_at,
        deleted_at)
    SELECT $1::text, u.id, ARRAY(SELECT jsonb_array_elements_text(u.types)),
        CASE WHEN u.scopes IS NOT NULL
            THEN ARRAY(SELECT jsonb_array_elements_text(u.scopes)) END,
        u.created_at, u.modified_at, u.deleted_at
    FROM unnest($2::text[], $3::jsonb[], $4::jsonb[], $5::text[], $6::text[], $7::text[])
        AS u(id, types, scopes, created_at, modified_at, deleted_at)
    ON CONFLICT (tenant, id) DO UPDATE SET types = excluded.types, scopes = excluded.scopes,
        modified_at = excluded.modified_at, deleted_at = excluded.deleted_at
    RETURNING tpk, id, (xmax = 0) AS inserted
), ser AS (
    INSERT INTO temporal_series AS s (tpk, attr, dataset_id)
    SELECT ent.tpk, v.attr, v.ds
    FROM unnest($8::text[], $9::text[], $10::text[]) AS v(id, attr, ds)
    JOIN ent ON ent.id = v.id
    ON CONFLICT (tpk, attr, dataset_id) DO UPDATE SET attr = excluded.attr
    RETURNING sid, tpk, attr, dataset_id
), ins AS (
    INSERT INTO temporal_instances (sid, observed_at, created_at, modified_at, num, deleted_at,
        body)
    SELECT ser.sid, i.observed, i.recorded, i.recorded, i.num, i.deleted, i.body
    FROM unnest($11::text[], $12::text[], $13::text[], $14::bigint[], $15::bigint[],
                $16::float8[], $17::bigint[], $18::jsonb[])
        AS i(id, attr, ds, observed, recorded, num, deleted, body)
    JOIN ent ON ent.id = i.id
    JOIN ser ON ser.tpk = ent.tpk AND ser.attr = i.attr AND ser.dataset_id = i.ds
    RETURNING sid, observed_at, num, deleted_at
), """ + ADD_CTE + """
SELECT id, inserted FROM ent
"""  # noqa: S608
_TPK = "SELECT tpk FROM temporal_entities WHERE tenant = $1 AND id = $2"
# Series go with their instances and rollups (no foreign keys: see the schema).
_DROP_SERIES = """
, i AS (DELETE FROM temporal_instances WHERE sid IN (SELECT sid FROM gone))
, r AS (DELETE FROM temporal_rollups WHERE sid IN (SELECT sid FROM gone))
SELECT 1 FROM gone
"""
_DELETE_ENTITY = """
WITH e AS (DELETE FROM temporal_entities WHERE tenant = $1 AND id = $2 RETURNING tpk),
gone AS (DELETE FROM temporal_series WHERE tpk IN (SELECT tpk FROM e) RETURNING sid)
""" + _DROP_SERIES.replace("SELECT 1 FROM gone", "SELECT 1 FROM e")  # noqa: S608
_DELETE_ATTR = f"""
WITH gone AS (DELETE FROM temporal_series WHERE tpk = ({_TPK}) AND attr = $3
    AND ($4::text IS NULL OR dataset_id = $4) RETURNING sid)
""" + _DROP_SERIES  # noqa: S608
_GET_INSTANCE = ("SELECT i.body, i.observed_at, i.created_at, i.sid FROM temporal_instances i "  # noqa: S608
                 "JOIN temporal_series s ON s.sid = i.sid "
                 f"WHERE s.tpk = ({_TPK}) AND s.attr = $3 AND i.ipk = $4 "
                 "AND i.deleted_at IS NULL FOR UPDATE OF i")
_SET_INSTANCE = ("UPDATE temporal_instances SET body = $2::jsonb, observed_at = $3, num = $4, "
                 "modified_at = $5 WHERE ipk = $1")
_DELETE_INSTANCE = ("DELETE FROM temporal_instances WHERE ipk = $3 AND sid IN (SELECT sid FROM "  # noqa: S608
                    f"temporal_series WHERE tpk = ({_TPK}) AND attr = $4) "
                    "RETURNING sid, observed_at")
log = logging.getLogger(__name__)
_PEND = "INSERT INTO temporal_pending (tenant, at, size, changes) VALUES ($1, $2, $3, $4)"
_PENDING = "SELECT seq, tenant, at, size, changes FROM temporal_pending ORDER BY seq LIMIT $1"
_ANY_PENDING = "SELECT EXISTS (SELECT 1 FROM temporal_pending)"
_SETTLED = "DELETE FROM temporal_pending WHERE seq = ANY($1::bigint[])"
SETTLE_LOCK = 0x75726269_73746c  # advisory lock of the worker settling histories
SETTLE_ROWS = 64  # pending rows (write batches) per settle step
SETTLE_CHANGES = 2000  # ... and at most about this many entity changes
Batch = Sequence[tuple[Entity, str | None, Sequence[Record]]]


def now_micros() -> int:
    """The current time in microseconds since the epoch."""
    return time.time_ns() // 1000


def write_args(tenant: str, batch: Batch) -> list[Any]:
    """The parameters of WRITE: each entity once (its last state), each series once."""
    last: dict[str, tuple[Entity, str | None]] = {e.id: (e, d) for e, d, _ in batch}
    ents: list[list[Any]] = [[] for _ in range(6)]
    for entity, deleted in last.values():
        now = entity.modified_at or now_iso()
        for column, value in zip(ents, (
                entity.id, orjson.dumps(entity.types),
                orjson.dumps(entity.scopes) if entity.scopes else None,
                entity.created_at or now, deleted or now, deleted), strict=True):
            column.append(value)
    series: dict[tuple[str, str, str], None] = {}
    inst: list[list[Any]] = [[] for _ in range(8)]
    for entity, _, records in batch:
        for r in records:
            ds = r.dataset_id or ""
            series[(entity.id, r.attr, ds)] = None
            body = orjson.dumps(r.instance)
            for column, item in zip(inst, (
                    entity.id, r.attr, ds, r.observed_at, r.recorded_at,
                    None if r.deleted else numeric(r.instance),
                    r.recorded_at if r.deleted else None, body), strict=True):
                column.append(item)
    keys = list(series)
    return [tenant, *ents, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
            *inst]


async def write(conn: asyncpg.Connection, tenant: str, batch: Batch) -> dict[str, bool]:
    """Record entities and their new instances; entity id -> whether its history is new."""
    rows = await conn.fetch(WRITE, *write_args(tenant, batch))
    return {r[0]: r[1] for r in rows}


async def _settled(conn: asyncpg.Connection, rows: Sequence[Any]) -> None:
    """Write some pending rows into histories, all or nothing (a savepoint)."""
    groups: list[tuple[str, list[tuple[Entity, str | None, Sequence[Record]]]]] = []
    for _, tenant, at, _size, data in rows:
        batch = journal_batch([Applied(*c) for c in decode_changes(data)], at)
        if groups and groups[-1][0] == tenant:
            groups[-1][1].extend(batch)
        else:
            groups.append((tenant, batch))
    async with conn.transaction():
        for tenant, batch in groups:
            await write(conn, tenant, batch)


def journal_batch(applied: Sequence[Applied], now: int) -> list[tuple[Entity, str | None,
                                                                      Sequence[Record]]]:
    """What a batch of entity changes adds to their histories."""
    batch: list[tuple[Entity, str | None, Sequence[Record]]] = []
    for change in applied:
        current = change.after if change.after is not None else change.before
        assert current is not None
        deleted = None if change.after is not None else from_micros(now)
        batch.append((current, deleted, changes(change.before, change.after, now)))
    return batch


async def settle_step(conn: asyncpg.Connection, wait: bool, rows: int = SETTLE_ROWS,
                      most: int = SETTLE_CHANGES) -> int | None:
    """In one transaction, turn the oldest pending changes into instances; how many rows.

    None when another worker is settling and `wait` is false.
    """
    async with conn.transaction():
        if wait:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SETTLE_LOCK)
        elif not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SETTLE_LOCK):
            return None
        taken, count = [], 0
        for row in await conn.fetch(_PENDING, rows):
            taken.append(row)
            count += row[3]
            if count >= most:
                break
        try:
            await _settled(conn, taken)
        except CONNECTION_ERRORS:
            raise
        except Exception:  # one bad batch must not hold up every history: one by one
            for row in taken:
                try:
                    await _settled(conn, [row])
                except CONNECTION_ERRORS:
                    raise
                except Exception:
                    log.exception("history: journaled batch %s of tenant %s cannot be "
                                  "recorded; dropped", row[0], row[1])
        if taken:
            await conn.execute(_SETTLED, [row[0] for row in taken])
        return len(taken)


def _check_text(entity: Entity, records: Sequence[Record]) -> None:
    texts = [entity.id, *entity.types, *(entity.scopes or ()), *(r.attr for r in records)]
    bodies = (orjson.dumps(r.instance) for r in records)
    if any("\x00" in t for t in texts) or any(b"\\u0000" in b for b in bodies):
        raise BadRequestData("text shall not contain the character U+0000")


class PostgresTemporalStore:
    """TemporalStore over PostgreSQL (the entity store's pool)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def journal(self, conn: asyncpg.Connection, tenant: str, applied: list[Applied]
                      ) -> None:
        """The entity store's journal: keep the batch's changes for `settle`, in its
        transaction (one plain INSERT: see urbis.storage.postgres.single)."""
        data = encode_changes((a.entity_id, a.before, a.after) for a in applied)
        await conn.execute(_PEND, tenant, now_micros(), len(applied), data)

    async def settle(self, limit: int = SETTLE_ROWS) -> int:
        """Settle some pending changes unless another worker is at it; how many rows."""
        done = await self.db.run(lambda conn: settle_step(conn, False, limit))
        return done or 0

    async def backlog(self) -> tuple[int, int]:
        """(write batches, entity changes) journaled and not yet settled."""
        row = await self.db.run(lambda conn: conn.fetchrow(
            "SELECT count(*), sum(size) FROM temporal_pending"))
        return int(row[0]), int(row[1] or 0)

    async def _caught_up(self) -> None:
        """Settle everything journaled so far (waiting for a worker settling meanwhile)."""

        async def job(conn: asyncpg.Connection) -> None:
            while await conn.fetchval(_ANY_PENDING) and await settle_step(conn, True):
                pass

        await self.db.run(job)

    async def add(self, tenant: str, entity: Entity, records: Sequence[Record], now: str
                  ) -> bool:
        """Record an entity's types/scopes and the given instances (the temporal API)."""
        await self._caught_up()
        _check_text(entity, records)
        entity.modified_at = now
        entity.created_at = entity.created_at or now
        created = await self.db.run(lambda conn: write(conn, tenant, [(entity, None, records)]))
        return created.get(entity.id, False)

    async def query(self, tenant: str, query: TemporalQuery) -> TemporalPage:
        """Histories of matching entities (see temporal_read)."""
        if "\x00" in tenant:
            return TemporalPage([], 0 if query.entities.count else None)
        await self._caught_up()
        try:
            return await self.db.run(lambda conn: run_query(conn, tenant, query))
        except asyncpg.InvalidRegularExpressionError as exc:
            raise BadRequestData(f"Invalid regular expression for PostgreSQL: {exc}") from None

    async def delete_entity(self, tenant: str, entity_id: str) -> bool:
        """Forget an entity's history (its series and instances cascade)."""
        if "\x00" in entity_id:
            return False
        await self._caught_up()
        rows = await self.db.run(lambda conn: conn.fetch(_DELETE_ENTITY, tenant, entity_id))
        return bool(rows)

    async def delete_attr(self, tenant: str, entity_id: str, attr: str,
                          dataset_id: str | None, delete_all: bool) -> bool:
        """Forget an attribute's series (one datasetId, or all with delete_all)."""
        if "\x00" in entity_id + attr + (dataset_id or ""):
            return False
        await self._caught_up()
        args: list[Any] = [tenant, entity_id, attr, None if delete_all else dataset_id or ""]
        rows = await self.db.run(lambda conn: conn.fetch(_DELETE_ATTR, *args))
        return bool(rows)

    async def modify_instance(self, tenant: str, entity_id: str, attr: str, key: int,
                              instance: Instance, now: str) -> bool:
        """Merge new members into one stored instance (its series stays the same)."""
        if "\x00" in entity_id + attr:
            return False
        await self._caught_up()
        when = to_micros(now)

        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                row = await conn.fetchrow(_GET_INSTANCE, tenant, entity_id, attr, key)
                if row is None:
                    return False
                body, observed, created, sid = row
                merged = merge_stored(body, instance)
                rec = record_of(attr, merged, created)
                _check_text(Entity(entity_id, []), [rec])
                at = rec.observed_at if "observedAt" in merged else observed
                await conn.execute(_SET_INSTANCE, key, orjson.dumps(rec.instance), at,
                                   numeric(rec.instance), when)
                await recompute(conn, [(sid, observed), (sid, at)])
                return True

        return await self.db.run(job)

    async def delete_instance(self, tenant: str, entity_id: str, attr: str, key: int) -> bool:
        """Delete one instance of an entity's attribute."""
        if "\x00" in entity_id + attr:
            return False
        await self._caught_up()
        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                gone = await conn.fetch(_DELETE_INSTANCE, tenant, entity_id, key, attr)
                await recompute(conn, [(r[0], r[1]) for r in gone])
            return bool(gone)

        return await self.db.run(job)

    async def expire(self, retention: Retention, now: int, batch: int = 5000) -> int:
        """Delete up to `batch` instances observed before their entity's retention period."""
        await self._caught_up()
        args: list[Any] = [now, batch, retention.default]
        keep = "$3::bigint"
        if retention.by_type:
            cases = []
            for type_iri, period in retention.by_type.items():
                args += [type_iri, period]
                cases.append(f"WHEN ${len(args) - 1}::text THEN ${len(args)}::bigint")
            keep = (f"COALESCE((SELECT max(CASE t {' '.join(cases)} END) "  # noqa: S608
                    "FROM unnest(te.types) t), $3::bigint)")
        sql = ("DELETE FROM temporal_instances WHERE ipk IN (SELECT i.ipk FROM "  # noqa: S608
               "temporal_entities te JOIN temporal_series s ON s.tpk = te.tpk JOIN "
               f"temporal_instances i ON i.sid = s.sid AND i.observed_at < $1 - {keep} LIMIT $2) "
               "RETURNING sid, observed_at")

        async def job(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                gone = await conn.fetch(sql, *args)
                await recompute(conn, [(r[0], r[1]) for r in gone])
            return len(gone)

        return await self.db.run(job)

