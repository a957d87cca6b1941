"""Apply a batch of mutations inside the writer's transaction, with set-at-a-time SQL.

Inserts and updates are collected and written with one `executemany` per table; primary keys
of new rows are assigned here (the single writer thread makes that safe). A mutation on an
entity that already has a pending write flushes first, so every mutation sees the state the
ones before it left, and a failed mutation can reload a true copy from the database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from urbis.context.errors import NgsiError
from urbis.context.model import Entity, now_iso
from urbis.storage.base import Applied, Change, Mutation, MutationOutcome
from urbis.storage.sqlite import geosql

COLUMNS = "e.pk, e.id, e.types, e.scopes, e.created_at, e.modified_at, e.attrs"
CHUNK = 400
Fingerprint = tuple[list[str], list[tuple[str, bytes]]]
# Called inside the writer's transaction with the changes of one mutate() batch (history,
# notification outbox): whatever it writes commits, or rolls back, with the entities.
SqliteJournal = Callable[[sqlite3.Connection, str, list[Applied]], None]


def row_to_entity(row: Sequence[Any]) -> Entity:
    """Decode one `entities` row (in COLUMNS order)."""
    return Entity(
        id=row[1],
        types=orjson.loads(row[2]),
        scopes=orjson.loads(row[3]) if row[3] else None,
        created_at=row[4],
        modified_at=row[5],
        attrs=orjson.loads(row[6]),
    )


def load_rows(conn: sqlite3.Connection, tenant: str, ids: list[str]
              ) -> dict[str, Sequence[Any]]:
    """Current rows (in COLUMNS order) of some entity ids: id -> row."""
    found: dict[str, Sequence[Any]] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT {COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id IN ({marks})"  # noqa: S608
        for row in conn.execute(sql, [tenant, *chunk]):
            found[row[1]] = row
    return found


def load(conn: sqlite3.Connection, tenant: str, ids: list[str]
         ) -> dict[str, tuple[int, Entity]]:
    """Current rows of some entity ids: id -> (pk, entity)."""
    return {i: (row[0], row_to_entity(row)) for i, row in load_rows(conn, tenant, ids).items()}


def load_pks(conn: sqlite3.Connection, pks: list[int]) -> list[Entity]:
    """The entities of some primary keys (a purge's journal), in key order."""
    found: list[Entity] = []
    for start in range(0, len(pks), CHUNK):
        chunk = pks[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT {COLUMNS} FROM entities e WHERE e.pk IN ({marks}) ORDER BY e.pk"  # noqa: S608
        found.extend(row_to_entity(row) for row in conn.execute(sql, chunk))
    return found


def fingerprint(entity: Entity) -> Fingerprint:
    """What decides whether the type and geo index rows must be rewritten."""
    return list(entity.types), [(a, orjson.dumps(g)) for a, g in entity.geo_values()]


class WriteBatch:
    """Pending writes of one mutate() call."""

    def __init__(self, conn: sqlite3.Connection, tenant: str) -> None:
        self.conn = conn
        self.tenant = tenant
        self._reset()

    def _reset(self) -> None:
        self.pending: set[str] = set()
        self.inserts: list[tuple[Any, ...]] = []
        self.updates: list[tuple[Any, ...]] = []
        self.index_pks: list[int] = []  # rows whose type / geo index rows are rewritten
        self.types: list[tuple[str, str, int]] = []
        self.geo: list[tuple[int, int, str, str]] = []
        self.rtree: list[tuple[int, float, float, float, float]] = []
        self.deletes: list[int] = []
        self._next_pk: int | None = None
        self._next_gid: int | None = None

    def insert(self, entity: Entity) -> int:
        """Queue a new row; returns its primary key."""
        if self._next_pk is None:
            self._next_pk = self._max("SELECT max(pk) FROM entities") + 1
        pk = self._next_pk
        self._next_pk += 1
        self.inserts.append((pk, self.tenant, entity.id, *_values(entity)))
        self._index(pk, entity)
        self.pending.add(entity.id)
        return pk

    def update(self, pk: int, entity: Entity, before: Fingerprint) -> None:
        """Queue a changed row (index rows only when types or geometries changed)."""
        self.updates.append((*_values(entity), pk))
        if fingerprint(entity) != before:
            self.index_pks.append(pk)
            self._index(pk, entity)
        self.pending.add(entity.id)

    def delete(self, entity_id: str, pk: int) -> None:
        """Queue a deletion."""
        self.deletes.append(pk)
        self.pending.add(entity_id)

    def _index(self, pk: int, entity: Entity) -> None:
        self.types.extend((self.tenant, t, pk) for t in entity.types)
        for attr, geojson, box in geosql.geo_rows(entity):
            if self._next_gid is None:
                self._next_gid = self._max("SELECT max(gid) FROM geo") + 1
            gid = self._next_gid
            self._next_gid += 1
            self.geo.append((gid, pk, attr, geojson))
            self.rtree.append((gid, *box))

    def _max(self, sql: str) -> int:
        value = self.conn.execute(sql).fetchone()[0]
        return int(value or 0)

    def flush(self) -> None:
        """Write everything queued, set-at-a-time."""
        conn = self.conn
        if self.deletes:
            delete_pks(conn, self.deletes)
        if self.index_pks:
            _delete_index(conn, self.index_pks)
        if self.inserts:
            conn.executemany(
                "INSERT INTO entities (pk, tenant, id, types, scopes, created_at, modified_at, "
                "attrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.inserts)
        if self.updates:
            conn.executemany(
                "UPDATE entities SET types = ?, scopes = ?, created_at = ?, modified_at = ?, "
                "attrs = ? WHERE pk = ?", self.updates)
        if self.types:
            conn.executemany(
                "INSERT OR IGNORE INTO entity_types (tenant, type, pk) VALUES (?, ?, ?)",
                self.types)
        if self.geo:
            conn.executemany("INSERT INTO geo (gid, pk, attr, geojson) VALUES (?, ?, ?, ?)",
                             self.geo)
            conn.executemany("INSERT INTO geo_rtree (gid, min_x, max_x, min_y, max_y) "
                             "VALUES (?, ?, ?, ?, ?)", self.rtree)
        self._reset()


def _values(entity: Entity) -> tuple[Any, ...]:
    return (
        orjson.dumps(entity.types).decode(),
        orjson.dumps(entity.scopes).decode() if entity.scopes else None,
        entity.created_at,
        entity.modified_at,
        orjson.dumps(entity.attrs).decode(),
    )


def apply(conn: sqlite3.Connection, tenant: str, mutations: Sequence[Mutation],
          journals: Sequence[SqliteJournal] = ()) -> list[MutationOutcome]:
    """Run each mutation against the current state and write the results.

    With journals, each is called once the batch is written, in the same transaction, with
    what every mutation changed (an Applied each, holding private before/after copies).
    """
    rows = load_rows(conn, tenant, list(dict.fromkeys(m.entity_id for m in mutations)))
    current = {i: (row[0], row_to_entity(row)) for i, row in rows.items()}
    batch = WriteBatch(conn, tenant)
    outcomes: list[MutationOutcome] = []
    applied: list[Applied] = []
    touched: set[str] = set()
    wrote = False
    for m in mutations:
        if m.entity_id in batch.pending:
            batch.flush()
        if journals and m.entity_id in touched:  # the copy in `current` is a journal's `after`
            fresh = load_rows(conn, tenant, [m.entity_id])
            rows.pop(m.entity_id, None)
            current.pop(m.entity_id, None)
            rows.update(fresh)
            current.update((i, (row[0], row_to_entity(row))) for i, row in fresh.items())
        pk, entity = current.get(m.entity_id, (None, None))
        before = fingerprint(entity) if entity is not None else None
        prior = row_to_entity(rows[m.entity_id]) if journals and entity is not None else None
        try:
            change = m.fn(entity)
        except NgsiError as err:
            if entity is not None:  # the function may have changed its private copy
                current.update(load(conn, tenant, [m.entity_id]))
            outcomes.append(MutationOutcome(m.entity_id, error=err))
            continue
        outcomes.append(MutationOutcome(m.entity_id, change=change))
        if _record(batch, current, m.entity_id, pk, before, change):
            wrote = True
            touched.add(m.entity_id)
            after = None if change.delete else change.entity
            if journals and (prior is not None or after is not None):
                applied.append(Applied(m.entity_id, prior, after))
    batch.flush()
    if wrote:
        conn.execute("INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)",
                     (tenant, now_iso()))
    if applied:
        for journal in journals:
            journal(conn, tenant, applied)
    return outcomes


def _record(batch: WriteBatch, current: dict[str, tuple[int, Entity]], entity_id: str,
            pk: int | None, before: Fingerprint | None, change: Change) -> bool:
    if change.delete:
        if pk is not None:
            batch.delete(entity_id, pk)
            current.pop(entity_id, None)
        return True
    if change.entity is None:
        if pk is not None:  # nothing to write; the copy may have been changed: reload
            current.update(load(batch.conn, batch.tenant, [entity_id]))
        return False
    if pk is None or before is None:
        pk = batch.insert(change.entity)
    else:
        batch.update(pk, change.entity, before)
    current[entity_id] = (pk, change.entity)
    return True


def _delete_index(conn: sqlite3.Connection, pks: list[int]) -> None:
    for start in range(0, len(pks), CHUNK):
        chunk = pks[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        conn.execute("DELETE FROM geo_rtree WHERE gid IN "  # noqa: S608
                     f"(SELECT gid FROM geo WHERE pk IN ({marks}))", chunk)
        conn.execute(f"DELETE FROM geo WHERE pk IN ({marks})", chunk)  # noqa: S608
        conn.execute(f"DELETE FROM entity_types WHERE pk IN ({marks})", chunk)  # noqa: S608


def delete_pks(conn: sqlite3.Connection, pks: list[int]) -> None:
    """Delete entities and their index rows."""
    _delete_index(conn, pks)
    for start in range(0, len(pks), CHUNK):
        chunk = pks[start : start + CHUNK]
        marks = ",".join("?" * len(chunk))
        conn.execute(f"DELETE FROM entities WHERE pk IN ({marks})", chunk)  # noqa: S608
