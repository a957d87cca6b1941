"""ContextStore on SQLite: the `jsonld_contexts` table, over its own connection.

Context writes are rare (an added context, a first fetch, usage counters now and then), so
one connection guarded by a lock and run in a worker thread is enough.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from urbis.storage.base import StoredContext
from urbis.storage.sqlite.schema import migrate

T = TypeVar("T")
_SELECT = "SELECT id, url, kind, body, created_at, last_used_at, hits FROM jsonld_contexts "
_PUT = ("INSERT OR REPLACE INTO jsonld_contexts (id, url, kind, body, created_at, last_used_at, "
        "hits) VALUES (?, ?, ?, ?, ?, ?, ?)")
_BY_ID = _SELECT + "WHERE id = ?"
_BY_URL = _SELECT + "WHERE url = ?"
_ALL = _SELECT + "ORDER BY created_at, id"
_OF_KIND = _SELECT + "WHERE kind = ? ORDER BY created_at, id"
_DELETE = "DELETE FROM jsonld_contexts WHERE id = ?"
_USAGE = ("UPDATE jsonld_contexts SET hits = hits + ?, "
          "last_used_at = max(coalesce(last_used_at, ''), ?) WHERE id = ?")


class SqliteContextStore:
    """JSON-LD contexts managed through /jsonldContexts, kept in SQLite."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Connect and create or upgrade the schema."""
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=10000")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn)
        self._conn = conn

    async def close(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(self._locked, conn.close)

    async def put_context(self, ctx: StoredContext) -> None:
        """Insert or replace a context by id."""
        row = (ctx.id, ctx.url, ctx.kind, json.dumps(ctx.body, ensure_ascii=False),
               ctx.created_at, ctx.last_used_at, ctx.hits)
        await self._run(lambda c: c.execute(_PUT, row))

    async def get_context(self, context_id: str) -> StoredContext | None:
        """A context by id (its URL for cached ones)."""
        return await self._one(_BY_ID, context_id)

    async def find_context_by_url(self, url: str) -> StoredContext | None:
        """A context by the URL it is served or was fetched from."""
        return await self._one(_BY_URL, url)

    async def list_contexts(self, kind: str | None = None) -> list[StoredContext]:
        """Every stored context, optionally of one kind, oldest first."""
        query, args = (_OF_KIND, (kind,)) if kind is not None else (_ALL, ())
        rows = await self._run(lambda c: c.execute(query, args).fetchall())
        return [_row(r) for r in rows]

    async def delete_context(self, context_id: str) -> bool:
        """Delete; False when it did not exist."""
        cursor = await self._run(lambda c: c.execute(_DELETE, (context_id,)))
        return bool(cursor.rowcount)

    async def record_usage(self, context_id: str, hits: int, last_used_at: str) -> None:
        """Add hits to a context's counter; nothing if it is gone."""
        await self._run(lambda c: c.execute(_USAGE, (hits, last_used_at, context_id)))

    async def _one(self, query: str, value: str) -> StoredContext | None:
        row = await self._run(lambda c: c.execute(query, (value,)).fetchone())
        return None if row is None else _row(row)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("SqliteContextStore is not open")
        return await asyncio.to_thread(self._locked, lambda: fn(conn))

    def _locked(self, fn: Callable[[], T]) -> T:
        with self._lock:
            return fn()


def _row(row: tuple[Any, ...]) -> StoredContext:
    return StoredContext(id=row[0], url=row[1], kind=row[2], body=json.loads(row[3]),
                         created_at=row[4], last_used_at=row[5], hits=row[6])
