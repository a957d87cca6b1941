"""Store administration by URL: schema versions and their upgrade (`urbis db upgrade`)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import asyncpg

from urbis.context.errors import ServiceUnavailable
from urbis.storage.registry import sqlite_path

CONNECT_TIMEOUT = 15.0
# Errors meaning "this URL names no database that can be opened", as opposed to a failure
# of the schema or of a statement once connected.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    ValueError,  # a malformed URL (no path, a port that is not a number, an unknown scheme)
    OSError,  # refused, unknown host, a directory that cannot be created
    ServiceUnavailable,  # the PostgreSQL pool could not connect
    sqlite3.Error,  # a file that cannot be opened or is not a database
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidAuthorizationSpecificationError,  # unknown role, wrong password
    asyncpg.InvalidCatalogNameError,  # no such database
)


class StoreUnreachable(Exception):
    """The store URL is wrong, or its database cannot be opened."""


class SchemaError(Exception):
    """The schema cannot be brought to this urbis's version (newer, or PostGIS missing)."""


@dataclass(frozen=True, slots=True)
class Upgrade:
    """Schema versions of a store before and after an upgrade."""

    before: int
    after: int


def is_unreachable(exc: BaseException) -> bool:
    """Whether an error opening a store means a bad URL or a database out of reach."""
    return isinstance(exc, _UNREACHABLE)


async def upgrade_schema(url: str) -> Upgrade:
    """Create or upgrade the schema of the store named by a URL."""
    scheme = urlparse(url).scheme
    try:
        if scheme == "sqlite":
            return await asyncio.to_thread(_upgrade_sqlite, sqlite_path(url))
        if scheme in ("postgresql", "postgres"):
            return await _upgrade_postgres(url)
    except Exception as exc:
        if is_unreachable(exc):
            raise StoreUnreachable(str(exc) or type(exc).__name__) from exc
        raise
    raise StoreUnreachable("unsupported store URL (use sqlite:///PATH or postgresql://...)")


def _upgrade_sqlite(path: str) -> Upgrade:
    from urbis.storage.sqlite import schema
    from urbis.storage.sqlite.db import connect

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        before = schema.schema_version(conn)
        if before > len(schema.MIGRATIONS):
            raise SchemaError(f"the database schema (version {before}) is newer than this "
                              f"urbis (version {len(schema.MIGRATIONS)})")
        schema.migrate(conn)
        return Upgrade(before, schema.schema_version(conn))
    finally:
        conn.close()


async def _upgrade_postgres(url: str) -> Upgrade:
    from urbis.storage.postgres import schema

    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    try:
        before = await schema.schema_version(conn)
        try:
            await schema.migrate(conn)
        except schema.MigrationError as exc:
            raise SchemaError(str(exc)) from exc
        return Upgrade(before, await schema.schema_version(conn))
    finally:
        await conn.close()
