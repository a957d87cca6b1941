"""ContextStore on PostgreSQL: the `jsonld_contexts` table, sharing the entity store's schema.

Contexts are not per tenant. The body is kept as the JSON text given, so a hosted context is
served back unchanged; `put_context` replaces any context with the same id or URL, as the
SQLite store does. Every write that changes what a URL resolves to is announced on the
invalidation channel in its own transaction, so other workers drop what they derived from it.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from urbis.storage.base import TOPIC_CONTEXTS, StoredContext
from urbis.storage.postgres.db import Database
from urbis.storage.postgres.notify import announce

_SELECT = "SELECT id, url, kind, body, created_at, last_used_at, hits FROM jsonld_contexts "
_REPLACED = "DELETE FROM jsonld_contexts WHERE id = $1 OR url = $2 RETURNING url"
_PUT = ("INSERT INTO jsonld_contexts (id, url, kind, body, created_at, last_used_at, hits) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)")
_BY_ID = _SELECT + "WHERE id = $1"
_BY_URL = _SELECT + "WHERE url = $1"
_ALL = _SELECT + "ORDER BY created_at, id"
_OF_KIND = _SELECT + "WHERE kind = $1 ORDER BY created_at, id"
_DELETE = "DELETE FROM jsonld_contexts WHERE id = $1 RETURNING url"
_USAGE = ("UPDATE jsonld_contexts SET hits = hits + $2, "
          "last_used_at = GREATEST(last_used_at, $3) WHERE id = $1")


class PostgresContextStore:
    """JSON-LD contexts managed through /jsonldContexts, kept in PostgreSQL."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 4,
                 database: Database | None = None) -> None:
        self._own = database is None
        self.db = database or Database(dsn, min_size=min_size, max_size=max_size)

    async def open(self) -> None:
        """Create or upgrade the schema and open the pool (unless it is shared)."""
        if self._own:
            await self.db.open()

    async def close(self) -> None:
        """Close the pool (unless it is shared)."""
        if self._own:
            await self.db.close()

    async def put_context(self, ctx: StoredContext) -> None:
        """Insert or replace a context by id (and by URL)."""
        row = (ctx.id, ctx.url, ctx.kind, json.dumps(ctx.body, ensure_ascii=False),
               ctx.created_at, ctx.last_used_at, ctx.hits)

        async def job(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                replaced = await conn.fetch(_REPLACED, ctx.id, ctx.url)
                await conn.execute(_PUT, *row)
                for url in {ctx.url, *(r[0] for r in replaced)}:
                    await announce(conn, TOPIC_CONTEXTS, url)

        await self.db.run(job)

    async def get_context(self, context_id: str) -> StoredContext | None:
        """A context by id (its URL for cached ones)."""
        return await self._one(_BY_ID, context_id)

    async def find_context_by_url(self, url: str) -> StoredContext | None:
        """A context by the URL it is served or was fetched from."""
        return await self._one(_BY_URL, url)

    async def list_contexts(self, kind: str | None = None) -> list[StoredContext]:
        """Every stored context, optionally of one kind, oldest first."""
        if kind is None:
            rows = await self.db.run(lambda conn: conn.fetch(_ALL))
        else:
            rows = await self.db.run(lambda conn: conn.fetch(_OF_KIND, kind))
        return [_row(r) for r in rows]

    async def delete_context(self, context_id: str) -> bool:
        """Delete; False when it did not exist."""
        if "\x00" in context_id:
            return False

        async def job(conn: asyncpg.Connection) -> bool:
            async with conn.transaction():
                url = await conn.fetchval(_DELETE, context_id)
                if url is not None:
                    await announce(conn, TOPIC_CONTEXTS, url)
                return url is not None

        return await self.db.run(job)

    async def record_usage(self, context_id: str, hits: int, last_used_at: str) -> None:
        """Add hits in one statement: workers counting the same context lose none."""
        if "\x00" not in context_id:
            await self.db.run(lambda conn: conn.execute(_USAGE, context_id, hits, last_used_at))

    async def _one(self, query: str, value: str) -> StoredContext | None:
        if "\x00" in value:
            return None
        row = await self.db.run(lambda conn: conn.fetchrow(query, value))
        return None if row is None else _row(row)


def _row(row: Any) -> StoredContext:
    return StoredContext(id=row[0], url=row[1], kind=row[2], body=json.loads(row[3]),
                         created_at=row[4], last_used_at=row[5], hits=row[6])
