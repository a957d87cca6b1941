"""One-entity batches in two round trips: read without locking, then write only if unchanged.

Most requests change one entity (PATCH, POST or DELETE of attributes, create, delete). The
general path (`urbis.storage.postgres.mutations.apply`) takes four round trips for them: BEGIN,
`SELECT ... FOR UPDATE`, the write, COMMIT. Here the entity is read with its `xmin` (the
transaction that wrote the row version), the mutation runs in Python, and one statement
writes the result *if the row is still that version* (`WHERE pk = $1 AND xmin = $2`),
committing on its own. When another writer got there first the statement changes nothing and
fails with a serialization failure (`urbis_expect_rows`), so the store runs the batch again,
on the state that writer left: no update is lost, and a create that loses the race on the
unique (tenant, id) index fails with a unique violation, runs again and reports
AlreadyExists.

Journals (history, the notification outbox) run in the same statement: each is called with a
`Deferred` connection whose `execute(sql, *args)` keeps the statement instead of running it,
and every kept statement becomes a data-modifying CTE of the write, renumbered after the
write's parameters. The write and every journal row therefore commit together or not at all,
and a conflict rolls them all back. A journal that does anything else with the connection
(reads such as `fetchval`, a statement `urbis.storage.postgres.ctesql` cannot combine) makes
the store take the general path from then on (nothing was written: the journals run before
the write is sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from urbis.storage.base import Mutation, MutationOutcome
from urbis.storage.postgres import ctesql
from urbis.storage.postgres.mutations import (
    ADD_TENANT,
    PgJournal,
    Plan,
    geo_columns,
    geo_fingerprint,
)

READ = ("SELECT pk, id, types, scopes, created_at, modified_at, attrs::text, xmin "
        "FROM entities WHERE tenant = $1 AND id = $2")
# The writes, as CTEs named w (one row per written entity) and helpers; $1 is always the pk
# (or the tenant of an insert), the last of the write's parameters the expected xmin.
_UPDATE = ("urbis_w AS (UPDATE entities SET types = $2::text[], scopes = $3::text[], "
           "created_at = $4, modified_at = $5, attrs = $6 WHERE pk = $1 AND xmin = $7::xid "
           "RETURNING pk)")
_GEO_DELETE = "urbis_geo_deleted AS (DELETE FROM geo WHERE pk IN (SELECT pk FROM urbis_w))"
_GEO_ADD = ("urbis_geo_added AS (INSERT INTO geo (pk, attr, geom, gc, geog) "
            "SELECT w.pk, g.attr, g.geom::geometry, g.gc::geometry, g.geog::geography "
            "FROM urbis_w w, unnest($8::text[], $9::text[], $10::text[], $11::text[]) "
            "AS g(attr, geom, gc, geog))")
_UPDATE_GEO = ", ".join([_UPDATE, _GEO_DELETE, _GEO_ADD])
_DELETE = "urbis_w AS (DELETE FROM entities WHERE pk = $1 AND xmin = $2::xid RETURNING pk)"
_INSERT = ", ".join([
    "urbis_w AS (INSERT INTO entities (tenant, id, types, scopes, created_at, modified_at, "
    "attrs) VALUES ($1, $2, $3::text[], $4::text[], $5, $6, $7) RETURNING pk)", _GEO_ADD])
_CHECK = "SELECT urbis_expect_rows((SELECT count(*) FROM urbis_w), 1)"


class NeedsConnection(Exception):
    """A journal used the deferred connection for more than one-statement writes."""


class Deferred:
    """What a journal sees on the fast path: `execute` keeps the statement for the write."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        """Keep a write statement (see urbis.storage.postgres.ctesql) for the write."""
        if timeout is not None or not args or ctesql.split(query) is None:
            raise NeedsConnection(query)
        self.statements.append((query, args))
        return ""

    def __getattr__(self, name: str) -> Any:
        raise NeedsConnection(name)


def compose(write: str, args: Sequence[Any], extra: Sequence[tuple[str, tuple[Any, ...]]]
            ) -> tuple[str, list[Any]]:
    """One statement: the write's CTEs, each extra statement's, the row check.

    NeedsConnection when the statements cannot be combined.
    """
    combined = ctesql.combine(write, list(args), list(extra), _CHECK)
    if combined is None:
        raise NeedsConnection(write)
    return combined


def write_of(plan: Plan, tenant: str, xmin: int | None) -> tuple[str, list[Any]]:
    """The conditional write of the plan's one changed entity."""
    [slot] = [s for s in plan.slots.values() if s.dirty]
    snap, pk = slot.current, slot.pk
    if snap is None:
        return _DELETE, [pk, xmin]
    assert slot.final is not None
    row = [snap.types, snap.scopes, snap.created_at, snap.modified_at, snap.attrs]
    if pk is None:
        return _INSERT, [tenant, snap.id, *row, *geo_columns(slot.final)]
    if slot.geo_before == geo_fingerprint(slot.final):
        return _UPDATE, [pk, *row, xmin]
    return _UPDATE_GEO, [pk, *row, xmin, *geo_columns(slot.final)]


async def apply_one(conn: asyncpg.Connection, tenant: str, mutation: Mutation, new_tenant: bool,
                    now: str, journals: Sequence[PgJournal], on_write: Any
                    ) -> tuple[list[MutationOutcome], bool]:
    """Run a one-mutation batch; SerializationError when the entity changed meanwhile.

    Raises NeedsConnection (before writing anything) when a journal cannot be deferred.
    `on_write()` is called just before the write is sent (from then on, a lost connection
    leaves the outcome unknown).
    """
    row = await conn.fetchrow(READ, tenant, mutation.entity_id)
    plan = Plan.from_rows([tuple(row)[:7]] if row is not None else [],
                          journaled=bool(journals))
    outcomes = plan.run([mutation])
    if not plan.wrote:
        return outcomes, False
    extra: list[tuple[str, tuple[Any, ...]]] = []
    if new_tenant:
        extra.append((ADD_TENANT, (tenant, now)))
    if plan.applied:
        deferred = Deferred()
        for journal in journals:
            await journal(deferred, tenant, plan.applied)
        extra += deferred.statements
    sql, args = compose(*write_of(plan, tenant, None if row is None else row[7]), extra)
    on_write()
    await conn.fetchval(sql, *args)
    return outcomes, True
