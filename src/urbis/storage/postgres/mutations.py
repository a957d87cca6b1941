"""Read-modify-write batches on PostgreSQL: lock, run the mutations in Python, write once.

A batch is one transaction: `SELECT ... FOR UPDATE` locks every existing row it names (in id
order, so concurrent batches cannot deadlock on them), the mutation functions run in order on
private copies, and one statement writes the outcome (deletes, updates, inserts and their
`geo` rows, as data-modifying CTEs). Concurrent read-modify-writes of one entity therefore
serialise on its row lock and never lose an update. Two batches inserting the same new id
race on the unique index: the loser's transaction fails and the caller runs the batch again,
when its lock finds the winner's row (a create then reports AlreadyExists).

One-entity batches first try the optimistic two-round-trip path of
`urbis.storage.postgres.single`, and come here after conflicts.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from urbis.context.errors import BadRequestData, NgsiError
from urbis.context.model import Entity
from urbis.storage.base import Applied, Mutation, MutationOutcome
from urbis.storage.postgres.geosql import geo_rows

LOCK = ("SELECT pk, id, types, scopes, created_at, modified_at, attrs::text FROM entities "
        "WHERE tenant = $1 AND id = ANY($2::text[]) ORDER BY id FOR UPDATE")
ADD_TENANT = "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING"
WRITE = """
WITH deleted AS (
    DELETE FROM entities WHERE pk = ANY($2::bigint[])
), updated AS (
    UPDATE entities e SET types = ARRAY(SELECT jsonb_array_elements_text(u.types)),
        scopes = CASE WHEN u.scopes IS NOT NULL
            THEN ARRAY(SELECT jsonb_array_elements_text(u.scopes)) END,
        created_at = u.created_at, modified_at = u.modified_at, attrs = u.attrs
    FROM unnest($3::bigint[], $4::jsonb[], $5::jsonb[], $6::text[], $7::text[], $8::jsonb[])
        AS u(pk, types, scopes, created_at, modified_at, attrs)
    WHERE e.pk = u.pk
), geo_deleted AS (
    DELETE FROM geo WHERE pk = ANY($9::bigint[])
), inserted AS (
    INSERT INTO entities (tenant, id, types, scopes, created_at, modified_at, attrs)
    SELECT $1::text, u.id, ARRAY(SELECT jsonb_array_elements_text(u.types)),
        CASE WHEN u.scopes IS NOT NULL
            THEN ARRAY(SELECT jsonb_array_elements_text(u.scopes)) END,
        u.created_at, u.modified_at, u.attrs
    FROM unnest($10::text[], $11::jsonb[], $12::jsonb[], $13::text[], $14::text[], $15::jsonb[])
        AS u(id, types, scopes, created_at, modified_at, attrs)
    RETURNING pk, id
)
INSERT INTO geo (pk, attr, geom, gc, geog)
SELECT COALESCE(g.pk, i.pk), g.attr, g.geom::geometry, g.gc::geometry, g.geog::geography
FROM unnest($16::bigint[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[])
    AS g(pk, id, attr, geom, gc, geog)
LEFT JOIN inserted i ON i.id = g.id
"""
# One-entity batches (most requests) get statements of their own: the general WRITE costs the
# server a few hundred microseconds more to plan and run.
DELETE_ONE = "DELETE FROM entities WHERE pk = $1"
UPDATE_ONE = ("UPDATE entities SET types = $2::text[], scopes = $3::text[], created_at = $4, "
              "modified_at = $5, attrs = $6::jsonb WHERE pk = $1")
UPDATE_ONE_GEO = """
WITH updated AS (
    UPDATE entities SET types = $2::text[], scopes = $3::text[], created_at = $4,
        modified_at = $5, attrs = $6::jsonb WHERE pk = $1
), geo_deleted AS (
    DELETE FROM geo WHERE pk = $1
)
INSERT INTO geo (pk, attr, geom, gc, geog)
SELECT $1, g.attr, g.geom::geometry, g.gc::geometry, g.geog::geography
FROM unnest($7::text[], $8::text[], $9::text[], $10::text[]) AS g(attr, geom, gc, geog)
"""
INSERT_ONE = """
WITH inserted AS (
    INSERT INTO entities (tenant, id, types, scopes, created_at, modified_at, attrs)
    VALUES ($1, $2, $3::text[], $4::text[], $5, $6, $7::jsonb) RETURNING pk
)
INSERT INTO geo (pk, attr, geom, gc, geog)
SELECT i.pk, g.attr, g.geom::geometry, g.gc::geometry, g.geog::geography
FROM inserted i, unnest($8::text[], $9::text[], $10::text[], $11::text[])
    AS g(attr, geom, gc, geog)
"""
# Awaited inside a batch's transaction with its changes (history, notification outbox):
# whatever it writes commits, or rolls back, with the entities. Journals should write with
# `await conn.execute(sql, *args)`, one statement per call, and never read what they wrote:
# on one-entity batches (urbis.storage.postgres.single) each such statement becomes part of
# the entity's write statement (two round trips for a PATCH instead of five or more). A
# journal that calls anything else (fetch, fetchval, ...) makes every batch take the
# transaction of `apply` below instead.
PgJournal = Callable[[asyncpg.Connection, str, list[Applied]], Awaitable[None]]
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


@dataclass(slots=True)
class Snapshot:
    """One entity state, encoded as it is written (decoded afresh for each mutation)."""

    id: str
    types: list[str]
    scopes: list[str] | None
    created_at: str | None
    modified_at: str | None
    attrs: bytes | str  # JSON text

    def entity(self) -> Entity:
        """A private, decoded copy."""
        return Entity(self.id, list(self.types), orjson.loads(self.attrs),
                      list(self.scopes) if self.scopes else None, self.created_at,
                      self.modified_at)


@dataclass(slots=True)
class _Slot:
    """One entity id of the batch: what the database holds, and what the batch has made of it."""

    pk: int | None = None
    geo_before: list[tuple[str, bytes]] | None = None
    current: Snapshot | None = None
    final: Entity | None = None
    dirty: bool = False


@dataclass(slots=True)
class Plan:
    """The mutations of one batch applied in memory; `statement` writes the result at once."""

    slots: dict[str, _Slot] = field(default_factory=dict)
    journaled: bool = False  # collect `applied` for journals
    applied: list[Applied] = field(default_factory=list)

    @classmethod
    def from_rows(cls, rows: Sequence[asyncpg.Record], journaled: bool = False) -> Plan:
        """The locked rows (LOCK's columns)."""
        plan = cls(journaled=journaled)
        for pk, id_, types, scopes, created, modified, attrs in rows:
            snapshot = Snapshot(id_, list(types), list(scopes) if scopes else None, created,
                                modified, attrs)
            plan.slots[id_] = _Slot(pk=pk, current=snapshot)
        return plan

    def run(self, mutations: Sequence[Mutation]) -> list[MutationOutcome]:
        """Run each mutation on the state the previous ones left."""
        return [self._one(m) for m in mutations]

    def _one(self, m: Mutation) -> MutationOutcome:
        slot = self.slots.setdefault(m.entity_id, _Slot())
        entity = slot.current.entity() if slot.current is not None else None
        if entity is not None and slot.geo_before is None:
            slot.geo_before = geo_fingerprint(entity)
        prior = slot.current.entity() if self.journaled and slot.current is not None else None
        try:
            change = m.fn(entity)
            if change.entity is not None and not change.delete:
                slot.current, slot.final = encode(change.entity), change.entity
                slot.dirty = True
                if self.journaled:
                    self.applied.append(Applied(m.entity_id, prior, change.entity))
            elif change.delete:
                slot.current, slot.final, slot.dirty = None, None, True
                if prior is not None:
                    self.applied.append(Applied(m.entity_id, prior, None))
        except NgsiError as err:
            return MutationOutcome(m.entity_id, error=err)
        return MutationOutcome(m.entity_id, change=change)

    @property
    def wrote(self) -> bool:
        """Whether any entity changes."""
        return any(s.dirty and (s.pk is not None or s.current is not None)
                   for s in self.slots.values())

    def statement(self, tenant: str) -> tuple[str, list[Any]]:
        """The statement writing the batch's changes, and its parameters."""
        dirty = [slot for slot in self.slots.values() if slot.dirty]
        if len(dirty) != 1:
            return WRITE, self.args(tenant)
        slot = dirty[0]
        snap, pk = slot.current, slot.pk
        if snap is None:
            return DELETE_ONE, [pk]
        assert slot.final is not None
        row = [snap.types, snap.scopes, snap.created_at, snap.modified_at, snap.attrs]
        if pk is None:
            return INSERT_ONE, [tenant, snap.id, *row, *geo_columns(slot.final)]
        if slot.geo_before == geo_fingerprint(slot.final):
            return UPDATE_ONE, [pk, *row]
        return UPDATE_ONE_GEO, [pk, *row, *geo_columns(slot.final)]

    def args(self, tenant: str) -> list[Any]:
        """The parameters of WRITE."""
        deleted: list[int] = []
        updates: list[list[Any]] = [[] for _ in range(6)]
        inserts: list[list[Any]] = [[] for _ in range(6)]
        geo_deleted: list[int] = []
        geo: list[list[Any]] = [[] for _ in range(6)]
        for slot in self.slots.values():
            if not slot.dirty:
                continue
            snap, pk = slot.current, slot.pk
            if snap is None:
                if pk is not None:
                    deleted.append(pk)
                continue
            _columns(updates if pk is not None else inserts, pk, snap)
            assert slot.final is not None
            if pk is not None and slot.geo_before == geo_fingerprint(slot.final):
                continue
            if pk is not None:
                geo_deleted.append(pk)
            for row in geo_rows(slot.final):
                _append(geo, [pk, None if pk is not None else snap.id, *row])
        return [tenant, deleted, *updates, geo_deleted, *inserts, *geo]


def _columns(target: list[list[Any]], pk: int | None, snap: Snapshot) -> None:
    scopes = orjson.dumps(snap.scopes) if snap.scopes else None
    first = pk if pk is not None else snap.id
    _append(target, [first, orjson.dumps(snap.types), scopes, snap.created_at, snap.modified_at,
                     snap.attrs])


def _append(columns: list[list[Any]], values: list[Any]) -> None:
    for column, value in zip(columns, values, strict=True):
        column.append(value)


def geo_columns(entity: Entity) -> list[list[Any]]:
    """The unnest arrays (attr, geom, gc, geog) of an entity's geo rows."""
    columns: list[list[Any]] = [[], [], [], []]
    for row in geo_rows(entity):
        _append(columns, list(row))
    return columns


def geo_fingerprint(entity: Entity) -> list[tuple[str, bytes]]:
    """What the geo rows of an entity are made from (equal: its geo rows need no rewrite)."""
    return [(attr, orjson.dumps(value)) for attr, value in entity.geo_values()]


def encode(entity: Entity) -> Snapshot:
    """The snapshot written for an entity; BadRequestData when PostgreSQL cannot store it."""
    try:
        attrs = orjson.dumps(entity.attrs)
    except orjson.JSONEncodeError as exc:
        raise BadRequestData(f"entity {entity.id} cannot be stored: {exc}") from None
    texts = [entity.id, *entity.types, *(entity.scopes or ()), entity.created_at or "",
             entity.modified_at or ""]
    if any("\x00" in t for t in texts) or (b"\\u0000" in attrs and _NUL.search(attrs)):
        raise BadRequestData(f"entity {entity.id!r} cannot be stored: text shall not contain "
                             "the character U+0000")
    return Snapshot(entity.id, list(entity.types), list(entity.scopes) if entity.scopes else None,
                    entity.created_at, entity.modified_at, attrs)


async def apply(conn: asyncpg.Connection, tenant: str, mutations: Sequence[Mutation],
                new_tenant: bool, now: str, journals: Sequence[PgJournal] = ()
                ) -> tuple[list[MutationOutcome], bool]:
    """Run one batch in the current transaction; (outcomes, whether anything was written).

    With journals, each is awaited once the batch is written, in the same transaction, with
    what every mutation changed.
    """
    ids = sorted({m.entity_id for m in mutations if "\x00" not in m.entity_id})
    plan = Plan.from_rows(await conn.fetch(LOCK, tenant, ids), journaled=bool(journals))
    outcomes = plan.run(mutations)
    wrote = plan.wrote
    if wrote:
        sql, args = plan.statement(tenant)
        await conn.execute(sql, *args)
        if new_tenant:
            await conn.execute(ADD_TENANT, tenant, now)
    if plan.applied:
        for journal in journals:
            await journal(conn, tenant, plan.applied)
    return outcomes, wrote
