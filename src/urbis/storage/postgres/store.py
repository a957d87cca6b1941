"""The PostgreSQL + PostGIS entity store: the system of record of a multi-worker deployment.

Tenants are a column (`entities.tenant`), not schemas or databases: one set of tables, indexes
and prepared statements serves every tenant, and each statement filters on it. Queries are
compiled into one statement (filters, order, paging) plus a count(*) when asked; mutations run
as described in `urbis.storage.postgres.mutations`. asyncpg prepares and caches every
statement per connection, so a repeated statement is parsed once; look-ups and writes keep
their generic plans, compiled queries are planned with their values (see _READ_SNAPSHOT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg

from urbis.context.errors import BadRequestData, ServiceUnavailable
from urbis.context.model import Entity, now_iso
from urbis.storage.base import (
    CAP_GEO,
    CAP_INVALIDATION,
    CAP_REGEX,
    TOPIC_ALL,
    TOPIC_TENANTS,
    Applied,
    AttributeInfo,
    EntityQuery,
    Mutation,
    MutationOutcome,
    QueryResult,
    TypeInfo,
)
from urbis.storage.postgres import mutations, single
from urbis.storage.postgres.db import Database
from urbis.storage.postgres.notify import PgInvalidationChannel
from urbis.storage.postgres.qsql import Params
from urbis.storage.postgres.querysql import COLUMNS, build_query, build_where

MAX_ATTEMPTS = 5
# One-entity batches try the optimistic two-round-trip path (urbis.storage.postgres.single)
# this many times; after as many conflicts they lock the row instead, so that one entity
# written by many clients at once still makes progress.
FAST_ATTEMPTS = 2
# Failures after which running the whole batch again is safe and may succeed.
RETRYABLE = (asyncpg.UniqueViolationError, asyncpg.DeadlockDetectedError,
             asyncpg.SerializationError)
# Page and count see one snapshot. Compiled queries are planned with their actual values each
# time: a generic plan (what a prepared statement switches to) can be twice as slow on scans,
# and JIT compilation costs more than it saves at these sizes.
_READ_SNAPSHOT = ("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
                  "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off")
_GET = f"SELECT {COLUMNS} FROM entities e WHERE e.tenant = $1 AND e.id = $2"  # noqa: S608
_TENANT = "SELECT 1 FROM tenants WHERE name = $1"
_DELETE_TYPE = "DELETE FROM entities WHERE tenant = $1 AND types @> ARRAY[$2::text]"
_RETURNED = COLUMNS.replace("e.", "entities.")  # the same columns, of the deleted rows
_TYPE_COUNTS = ("SELECT t, count(DISTINCT e.pk) FROM entities e, unnest(e.types) t "
                "WHERE e.tenant = $1 GROUP BY t ORDER BY t")
_TYPE_ATTRS = ("SELECT t, a.key, a.value -> 0 ->> 'type' FROM entities e, "
               "unnest(e.types) t, jsonb_each(e.attrs) a WHERE e.tenant = $1 GROUP BY 1, 2, 3")
_ATTRS = ("SELECT a.key, t, a.value -> 0 ->> 'type', count(*) FROM entities e, "
          "unnest(e.types) t, jsonb_each(e.attrs) a WHERE e.tenant = $1 GROUP BY 1, 2, 3 "
          "ORDER BY 1")


@dataclass(slots=True)
class _Attempt:
    """How far one run of a batch got, and which path it takes."""

    committing: bool = False
    fast: bool = False

    def writing(self) -> None:
        """From now on a lost connection leaves the outcome unknown."""
        self.committing = True


def row_to_entity(row: Sequence[Any]) -> Entity:
    """Decode one row in COLUMNS order."""
    return Entity(id=row[0], types=list(row[1]), scopes=list(row[2]) if row[2] else None,
                  created_at=row[3], modified_at=row[4], attrs=row[5])


class PostgresEntityStore:
    """EntityStore over PostgreSQL + PostGIS; tenants are a column of every entity row."""

    capabilities = frozenset({CAP_GEO, CAP_REGEX, CAP_INVALIDATION})

    def __init__(self, dsn: str, *, min_size: int = 2, max_size: int = 10) -> None:
        self.db = Database(dsn, min_size=min_size, max_size=max_size)
        self.invalidations = PgInvalidationChannel(dsn)
        self.invalidations.subscribe(self._invalidate)
        self._tenants: set[str] = set()  # known to exist
        self.journals: list[mutations.PgJournal] = []
        self._deferrable = True  # every journal so far writes through single.Deferred

    def add_journal(self, journal: mutations.PgJournal) -> None:
        """Have `journal` see every mutate() batch's changes inside its transaction."""
        self.journals.append(journal)

    async def open(self) -> None:
        """Create or upgrade the schema, open the pool and listen for invalidations."""
        await self.db.open()
        try:
            await self.invalidations.open()
        except BaseException:
            await self.db.close()
            raise

    async def close(self) -> None:
        """Stop listening and close the pool."""
        await self.invalidations.close()
        await self.db.close()

    def _invalidate(self, topic: str, key: str | None) -> None:
        if topic == TOPIC_ALL or (topic == TOPIC_TENANTS and key is None):
            self._tenants.clear()
        elif topic == TOPIC_TENANTS:
            self._tenants.discard(key or "")

    async def tenant_exists(self, tenant: str) -> bool:
        """A tenant exists from its first write (by any worker)."""
        if tenant in self._tenants:
            return True
        if "\x00" in tenant:
            return False
        found = await self.db.run(lambda conn: conn.fetchval(_TENANT, tenant))
        if found:
            self._tenants.add(tenant)
        return bool(found)

    async def get(self, tenant: str, entity_id: str) -> Entity | None:
        """One entity by id (an index look-up)."""
        if "\x00" in tenant or "\x00" in entity_id:
            return None
        row = await self.db.run(lambda conn: conn.fetchrow(_GET, tenant, entity_id))
        return None if row is None else row_to_entity(row)

    async def query(self, tenant: str, query: EntityQuery) -> QueryResult:
        """Entities matching the query; filters, order and paging run in SQL."""
        statements = build_query(tenant, query)

        async def job(conn: asyncpg.Connection) -> QueryResult:
            await conn.execute(_READ_SNAPSHOT)
            try:
                entities: list[Entity] = []
                if query.limit > 0:
                    rows = await conn.fetch(statements.page, *statements.args)
                    entities = [row_to_entity(r) for r in rows]
                count = None
                if query.count:
                    count = await conn.fetchval(statements.count, *statements.count_args)
            finally:
                if not conn.is_closed():
                    await conn.execute("COMMIT")
            return QueryResult(entities, count)

        try:
            return await self.db.run(job)
        except asyncpg.InvalidRegularExpressionError as exc:
            raise BadRequestData(f"Invalid regular expression for PostgreSQL: {exc}") from None

    async def scan(self, tenant: str, query: EntityQuery, after: str | None = None
                   ) -> list[Entity]:
        """A page of matching entities after an id, in id order (the (tenant, id) index)."""
        params = Params()
        where = build_where(tenant, query, params)
        if after is not None:
            where += f" AND e.id > {params.name(after)}"
        limit = params.add(query.limit, "bigint")
        sql = (f"SELECT {COLUMNS} FROM entities e WHERE {where} "  # noqa: S608
               f"ORDER BY e.id LIMIT {limit}")
        try:
            rows = await self.db.run(lambda conn: conn.fetch(sql, *params.values))
        except asyncpg.InvalidRegularExpressionError as exc:
            raise BadRequestData(f"Invalid regular expression for PostgreSQL: {exc}") from None
        return [row_to_entity(r) for r in rows]

    async def mutate(self, tenant: str, mutations: Sequence[Mutation]) -> list[MutationOutcome]:
        """Apply read-modify-write mutations in one transaction, row-locked."""
        if not mutations:
            return []
        reconnected = False
        fast = len(mutations) == 1 and "\x00" not in mutations[0].entity_id + tenant
        for attempt in range(1, MAX_ATTEMPTS + 1):
            state = _Attempt(fast=fast and attempt <= FAST_ATTEMPTS and self._deferrable)
            try:
                outcomes, wrote = await self.db.run(
                    partial(self._run, tenant=tenant, batch=mutations, state=state), retry=False)
            except RETRYABLE:
                if attempt == MAX_ATTEMPTS:
                    raise
                continue
            except ServiceUnavailable:
                # Lost before COMMIT: rolled back, safe to run again (once). Lost during
                # COMMIT: the outcome is unknown, so it is never run again.
                if state.committing or reconnected:
                    raise
                reconnected = True
                continue
            if wrote:
                self._tenants.add(tenant)
            return outcomes
        raise AssertionError("unreachable")

    async def _run(self, conn: asyncpg.Connection, tenant: str, batch: Sequence[Mutation],
                   state: _Attempt) -> tuple[list[MutationOutcome], bool]:
        new_tenant = tenant not in self._tenants
        if state.fast:
            try:
                return await single.apply_one(conn, tenant, batch[0], new_tenant, now_iso(),
                                              self.journals, state.writing)
            except single.NeedsConnection:  # nothing written: run the general path instead
                self._deferrable = False
        async with conn.transaction():
            result = await mutations.apply(conn, tenant, batch, new_tenant, now_iso(),
                                           self.journals)
            state.committing = True
        return result

    async def delete_by_type(self, tenant: str, type_iri: str) -> int:
        """Delete every entity of a type (their geo rows cascade)."""
        if "\x00" in type_iri or "\x00" in tenant:
            return 0
        if not self.journals:
            status = await self.db.run(lambda conn: conn.execute(_DELETE_TYPE, tenant, type_iri))
            return int(status.split()[-1])

        async def job(conn: asyncpg.Connection) -> int:
            async with conn.transaction():
                rows = await conn.fetch(_DELETE_TYPE + f" RETURNING {_RETURNED}", tenant,
                                        type_iri)
                applied = [Applied(e.id, e, None) for e in map(row_to_entity, rows)]
                for journal in self.journals if applied else ():
                    await journal(conn, tenant, applied)
            return len(rows)

        return await self.db.run(job, retry=False)

    async def types(self, tenant: str) -> list[TypeInfo]:
        """Entity types with counts and the attributes their entities have."""

        async def job(conn: asyncpg.Connection) -> list[TypeInfo]:
            infos = {t: TypeInfo(t, n) for t, n in await conn.fetch(_TYPE_COUNTS, tenant)}
            for type_, attr, attr_type in await conn.fetch(_TYPE_ATTRS, tenant):
                infos[type_].attributes.setdefault(attr, set()).add(attr_type)
            return list(infos.values())

        return [] if "\x00" in tenant else await self.db.run(job)

    async def attributes(self, tenant: str) -> list[AttributeInfo]:
        """Attribute names with the entity types that have them."""

        async def job(conn: asyncpg.Connection) -> list[AttributeInfo]:
            infos: dict[str, AttributeInfo] = {}
            for attr, type_, attr_type, count in await conn.fetch(_ATTRS, tenant):
                info = infos.setdefault(attr, AttributeInfo(attr, 0))
                info.count += count
                info.types.add(type_)
                info.attribute_types.add(attr_type)
            return list(infos.values())

        return [] if "\x00" in tenant else await self.db.run(job)

    async def tenant_counts(self) -> dict[str, int]:
        """Entities per tenant (the (tenant, id) index)."""
        rows = await self.db.run(
            lambda conn: conn.fetch("SELECT tenant, count(*) FROM entities GROUP BY tenant"))
        return {tenant: count for tenant, count in rows}
