"""The embedded SQLite entity store (WAL, one writer with group commit, reader pool)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from urbis.context.errors import NgsiError
from urbis.context.model import Entity, now_iso
from urbis.storage.base import (
    CAP_GEO,
    CAP_REGEX,
    AttributeInfo,
    Change,
    EntityQuery,
    Mutation,
    MutationOutcome,
    QueryResult,
    TypeInfo,
)
from urbis.storage.sqlite import geosql, qsql
from urbis.storage.sqlite.db import Database
from urbis.storage.sqlite.querysql import build_query

_COLUMNS = "e.pk, e.id, e.types, e.scopes, e.created_at, e.modified_at, e.attrs"
_CHUNK = 400


def setup_connection(conn: sqlite3.Connection) -> None:
    """Register the SQL functions queries use (regexp, geo predicates)."""
    qsql.register_functions(conn)
    geosql.register_functions(conn)


def row_to_entity(row: Sequence[Any]) -> Entity:
    """Decode one `entities` row (in _COLUMNS order)."""
    return Entity(
        id=row[1],
        types=orjson.loads(row[2]),
        scopes=orjson.loads(row[3]) if row[3] else None,
        created_at=row[4],
        modified_at=row[5],
        attrs=orjson.loads(row[6]),
    )


class SqliteEntityStore:
    """EntityStore over one SQLite file; tenants are a column of every table."""

    capabilities = frozenset({CAP_GEO, CAP_REGEX})

    def __init__(self, path: str, *, readers: int = 2, synchronous: str = "FULL") -> None:
        self.db = Database(path, readers=readers, synchronous=synchronous,
                           setup=setup_connection)
        self._tenants: set[str] = set()

    async def open(self) -> None:
        """Create the schema and start the writer."""
        await self.db.open()
        rows = await self.db.read(lambda c: c.execute("SELECT name FROM tenants").fetchall())
        self._tenants = {r[0] for r in rows}

    async def close(self) -> None:
        """Flush and close."""
        await self.db.close()

    async def tenant_exists(self, tenant: str) -> bool:
        """A tenant exists from its first write."""
        return tenant in self._tenants

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """One entity by id (a primary-key look-up on the calling thread)."""

        def job(conn: sqlite3.Connection) -> Entity | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id = ?",  # noqa: S608
                (tenant, entity_id),
            ).fetchone()
            return row_to_entity(row) if row else None

        return self.db.read_inline(job)

    async def query(self, tenant: str, query: EntityQuery) -> QueryResult:
        """Entities matching the query; filters, order and paging run in SQL."""
        where, params, order, order_params = build_query(tenant, query)

        def job(conn: sqlite3.Connection) -> QueryResult:
            entities: list[Entity] = []
            if query.limit > 0:
                sql = (f"SELECT {_COLUMNS} FROM entities e WHERE {where} "  # noqa: S608
                       f"ORDER BY {order} LIMIT ? OFFSET ?")
                rows = conn.execute(
                    sql, [*params, *order_params, query.limit, query.offset]).fetchall()
                entities = [row_to_entity(r) for r in rows]
            count = None
            if query.count:
                sql = f"SELECT count(*) FROM entities e WHERE {where}"  # noqa: S608
                count = conn.execute(sql, params).fetchone()[0]
            return QueryResult(entities, count)

        return await self.db.read(job)

    async def mutate(self, tenant: str, mutations: Sequence[Mutation]) -> list[MutationOutcome]:
        """Apply read-modify-write mutations in one transaction of the writer."""
        outcomes = await self.db.write(lambda conn: _apply(conn, tenant, mutations))
        if any(o.change is not None for o in outcomes):
            self._tenants.add(tenant)
        return outcomes

    async def delete_by_type(self, tenant: str, type_iri: str) -> int:
        """Delete every entity of a type."""

        def job(conn: sqlite3.Connection) -> int:
            pks = [r[0] for r in conn.execute(
                "SELECT pk FROM entity_types WHERE tenant = ? AND type = ?", (tenant, type_iri))]
            for start in range(0, len(pks), _CHUNK):
                _delete_pks(conn, pks[start : start + _CHUNK])
            return len(pks)

        return await self.db.write(job)

    async def types(self, tenant: str) -> list[TypeInfo]:
        """Entity types with counts and the attributes their entities have."""

        def job(conn: sqlite3.Connection) -> list[TypeInfo]:
            infos: dict[str, TypeInfo] = {}
            for type_, count in conn.execute(
                "SELECT type, count(*) FROM entity_types WHERE tenant = ? GROUP BY type "
                "ORDER BY type", (tenant,)):
                infos[type_] = TypeInfo(type_, count)
            for type_, attr, attr_type in conn.execute(
                "SELECT t.type, a.key, a.value ->> '$[0].type' FROM entity_types t "
                "JOIN entities e ON e.pk = t.pk, json_each(e.attrs) a "
                "WHERE t.tenant = ? GROUP BY 1, 2, 3", (tenant,)):
                infos[type_].attributes.setdefault(attr, set()).add(attr_type)
            return list(infos.values())

        return await self.db.read(job)

    async def attributes(self, tenant: str) -> list[AttributeInfo]:
        """Attribute names with the entity types that have them."""

        def job(conn: sqlite3.Connection) -> list[AttributeInfo]:
            infos: dict[str, AttributeInfo] = {}
            for attr, type_, attr_type, count in conn.execute(
                "SELECT a.key, t.type, a.value ->> '$[0].type', count(*) FROM entities e "
                "JOIN entity_types t ON t.pk = e.pk, json_each(e.attrs) a "
                "WHERE e.tenant = ? GROUP BY 1, 2, 3 ORDER BY 1", (tenant,)):
                info = infos.setdefault(attr, AttributeInfo(attr, 0))
                info.count += count
                info.types.add(type_)
                info.attribute_types.add(attr_type)
            return list(infos.values())

        return await self.db.read(job)


def _apply(conn: sqlite3.Connection, tenant: str, mutations: Sequence[Mutation]
           ) -> list[MutationOutcome]:
    current = _load(conn, tenant, list(dict.fromkeys(m.entity_id for m in mutations)))
    outcomes: list[MutationOutcome] = []
    wrote = False
    for m in mutations:
        pk, entity = current.get(m.entity_id, (None, None))
        before = _fingerprint(entity)
        try:
            change = m.fn(entity)
        except NgsiError as err:
            if pk is not None:  # the function may have changed its private copy: reload
                current[m.entity_id] = _load(conn, tenant, [m.entity_id]).get(
                    m.entity_id, (None, None))
            outcomes.append(MutationOutcome(m.entity_id, error=err))
            continue
        current[m.entity_id] = _write(conn, tenant, pk, before, change)
        wrote = wrote or change.entity is not None or change.delete
        outcomes.append(MutationOutcome(m.entity_id, change=change))
    if wrote:
        conn.execute("INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)",
                     (tenant, now_iso()))
    return outcomes


def _load(conn: sqlite3.Connection, tenant: str, ids: list[str]
          ) -> dict[str, tuple[int | None, Entity | None]]:
    found: dict[str, tuple[int | None, Entity | None]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT {_COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id IN ({marks})"  # noqa: S608
        for row in conn.execute(sql, [tenant, *chunk]):
            found[row[1]] = (row[0], row_to_entity(row))
    return found


def _fingerprint(entity: Entity | None) -> tuple[list[str], list[tuple[str, Any]]] | None:
    if entity is None:
        return None
    return list(entity.types), [(a, orjson.dumps(g)) for a, g in entity.geo_values()]


def _write(conn: sqlite3.Connection, tenant: str, pk: int | None,
           before: tuple[list[str], list[tuple[str, Any]]] | None, change: Change
           ) -> tuple[int | None, Entity | None]:
    if change.delete:
        if pk is not None:
            _delete_pks(conn, [pk])
        return None, None
    entity = change.entity
    if entity is None:
        return pk, None if pk is None else _reload(conn, pk)
    values = (
        orjson.dumps(entity.types).decode(),
        orjson.dumps(entity.scopes).decode() if entity.scopes else None,
        entity.created_at,
        entity.modified_at,
        orjson.dumps(entity.attrs).decode(),
    )
    if pk is None:
        pk = conn.execute(
            "INSERT INTO entities (tenant, id, types, scopes, created_at, modified_at, attrs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (tenant, entity.id, *values)).lastrowid
        assert pk is not None
        _write_types(conn, tenant, pk, entity.types)
        _write_geo(conn, pk, entity)
        return pk, entity
    conn.execute("UPDATE entities SET types = ?, scopes = ?, created_at = ?, modified_at = ?, "
                 "attrs = ? WHERE pk = ?", (*values, pk))
    after = _fingerprint(entity)
    if before is None or after is None or before[0] != after[0]:
        conn.execute("DELETE FROM entity_types WHERE pk = ?", (pk,))
        _write_types(conn, tenant, pk, entity.types)
    if before is None or after is None or before[1] != after[1]:
        _delete_geo(conn, [pk])
        _write_geo(conn, pk, entity)
    return pk, entity


def _reload(conn: sqlite3.Connection, pk: int) -> Entity | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM entities e WHERE e.pk = ?", (pk,)).fetchone()  # noqa: S608
    return row_to_entity(row) if row else None


def _write_types(conn: sqlite3.Connection, tenant: str, pk: int, types: list[str]) -> None:
    conn.executemany("INSERT OR IGNORE INTO entity_types (tenant, type, pk) VALUES (?, ?, ?)",
                     [(tenant, t, pk) for t in types])


def _write_geo(conn: sqlite3.Connection, pk: int, entity: Entity) -> None:
    for attr, geojson, bbox in geosql.geo_rows(entity):
        gid = conn.execute("INSERT INTO geo (pk, attr, geojson) VALUES (?, ?, ?)",
                           (pk, attr, geojson)).lastrowid
        conn.execute("INSERT INTO geo_rtree (gid, min_x, max_x, min_y, max_y) "
                     "VALUES (?, ?, ?, ?, ?)", (gid, *bbox))


def _delete_geo(conn: sqlite3.Connection, pks: list[int]) -> None:
    marks = ",".join("?" * len(pks))
    conn.execute(f"DELETE FROM geo_rtree WHERE gid IN (SELECT gid FROM geo WHERE pk IN ({marks}))",  # noqa: S608
                 pks)
    conn.execute(f"DELETE FROM geo WHERE pk IN ({marks})", pks)  # noqa: S608


def _delete_pks(conn: sqlite3.Connection, pks: list[int]) -> None:
    if not pks:
        return
    marks = ",".join("?" * len(pks))
    _delete_geo(conn, pks)
    conn.execute(f"DELETE FROM entity_types WHERE pk IN ({marks})", pks)  # noqa: S608
    conn.execute(f"DELETE FROM entities WHERE pk IN ({marks})", pks)  # noqa: S608
