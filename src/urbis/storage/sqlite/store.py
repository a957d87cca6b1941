"""The embedded SQLite entity store (WAL, one writer with group commit, reader pool)."""

from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import Sequence

from urbis.context.model import Entity
from urbis.storage.base import (
    CAP_GEO,
    CAP_REGEX,
    Applied,
    AttributeInfo,
    EntityQuery,
    Mutation,
    MutationOutcome,
    QueryResult,
    TypeInfo,
)
from urbis.storage.sqlite import geosql, qsql, writes
from urbis.storage.sqlite.db import Database
from urbis.storage.sqlite.querysql import build_query
from urbis.storage.sqlite.writes import COLUMNS, row_to_entity


def setup_connection(conn: sqlite3.Connection) -> None:
    """Register the SQL functions queries use (regexp, geo predicates)."""
    qsql.register_functions(conn)
    geosql.register_functions(conn)


class SqliteEntityStore:
    """EntityStore over one SQLite file; tenants are a column of every table."""

    capabilities = frozenset({CAP_GEO, CAP_REGEX})

    def __init__(self, path: str, *, readers: int = 2, synchronous: str = "FULL") -> None:
        self.db = Database(path, readers=readers, synchronous=synchronous,
                           setup=setup_connection)
        self._tenants: set[str] = set()
        self.journals: list[writes.SqliteJournal] = []

    def add_journal(self, journal: writes.SqliteJournal) -> None:
        """Have `journal` see every mutate() batch's changes inside its transaction."""
        self.journals.append(journal)

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

    def note_tenant(self, tenant: str) -> None:
        """Learn of a tenant created by another store on this file (a subscription's)."""
        self._tenants.add(tenant)

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """One entity by id (a primary-key look-up on the calling thread)."""

        def job(conn: sqlite3.Connection) -> Entity | None:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM entities e WHERE e.tenant = ? AND e.id = ?",  # noqa: S608
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
                sql = (f"SELECT {COLUMNS} FROM entities e WHERE {where} "  # noqa: S608
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

    async def scan(self, tenant: str, query: EntityQuery, after: str | None = None
                   ) -> list[Entity]:
        """A page of matching entities after an id, in id order (the (tenant, id) index)."""
        where, params, _, _ = build_query(tenant, query)
        if after is not None:
            where += " AND e.id > ?"
            params.append(after)
        sql = f"SELECT {COLUMNS} FROM entities e WHERE {where} ORDER BY e.id LIMIT ?"  # noqa: S608

        def job(conn: sqlite3.Connection) -> list[Entity]:
            return [row_to_entity(r) for r in conn.execute(sql, [*params, query.limit])]

        return await self.db.read(job)

    async def mutate(self, tenant: str, mutations: Sequence[Mutation]) -> list[MutationOutcome]:
        """Apply read-modify-write mutations in one transaction of the writer."""
        # Journals run on the writer thread in a copy of this context (the audit journal
        # reads who is calling from it).
        ctx = contextvars.copy_context()
        outcomes = await self.db.write(
            lambda conn: ctx.run(writes.apply, conn, tenant, mutations, self.journals))
        if any(o.change is not None for o in outcomes):
            self._tenants.add(tenant)
        return outcomes

    async def delete_by_type(self, tenant: str, type_iri: str) -> int:
        """Delete every entity of a type."""

        def job(conn: sqlite3.Connection) -> int:
            pks = [r[0] for r in conn.execute(
                "SELECT pk FROM entity_types WHERE tenant = ? AND type = ?", (tenant, type_iri))]
            gone = writes.load_pks(conn, pks) if self.journals and pks else []
            writes.delete_pks(conn, pks)
            applied = [Applied(e.id, e, None) for e in gone]
            for journal in self.journals if applied else ():
                journal(conn, tenant, applied)
            return len(pks)

        ctx = contextvars.copy_context()
        return await self.db.write(lambda conn: ctx.run(job, conn))

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

    async def tenant_counts(self) -> dict[str, int]:
        """Entities per tenant (the (tenant, id) index)."""

        def job(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT tenant, count(*) FROM entities GROUP BY tenant")
            return {tenant: count for tenant, count in rows}

        return await self.db.read(job)
