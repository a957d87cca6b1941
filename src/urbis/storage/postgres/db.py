"""PostgreSQL access: an asyncpg pool that maps a lost server onto ServiceUnavailable (503).

Every job runs on a pooled connection. When the server goes away (restart, failover, a killed
backend, too many connections), the job fails with `ServiceUnavailable`; a job that is safe to
repeat (any read, a transaction that never reached COMMIT) is first retried once on a fresh
connection, and every pooled connection is renewed, so idle connections that died while the
server restarted cost no request. Once the server is back, requests succeed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson

from urbis.context.errors import ServiceUnavailable
from urbis.storage.postgres.schema import migrate

T = TypeVar("T")
log = logging.getLogger(__name__)
ACQUIRE_TIMEOUT = 10.0
STATEMENT_CACHE = 512
# asyncpg and OS errors meaning "the server or the connection is gone", not "the query failed".
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection closed under us
    asyncpg.CannotConnectNowError,  # the server is starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)
Job = Callable[[asyncpg.Connection], Awaitable[T]]


class ConnectionLost(ConnectionError):
    """The server ended a pooled connection while it was being used."""


class Database:
    """A pool of connections to one PostgreSQL database, its schema migrated on open."""

    def __init__(self, dsn: str, *, min_size: int = 2, max_size: int = 10) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(f"need 0 <= min_size <= max_size and max_size >= 1, "
                             f"got {min_size}, {max_size}")
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        """Migrate the schema, then create the pool."""
        try:
            conn = await asyncpg.connect(self.dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=self.min_size, max_size=self.max_size, init=setup_connection,
                reset=_reset, statement_cache_size=STATEMENT_CACHE)
        except CONNECTION_ERRORS as exc:
            raise ServiceUnavailable(f"the database is unavailable: {exc}") from exc

    async def close(self) -> None:
        """Close every connection (waiting for the ones in use)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.wait_for(pool.close(), timeout=30)

    async def run(self, job: Job[T], *, retry: bool = True) -> T:
        """Run `job` on a pooled connection; retried once on a lost connection if `retry`."""
        attempts = 2 if retry else 1
        for attempt in range(attempts):
            try:
                return await self._once(job)
            except (*CONNECTION_ERRORS, asyncpg.InterfaceError) as exc:
                if not is_connection_lost(exc):
                    raise
                if self._pool is not None:  # the server probably restarted: renew them all
                    await self._pool.expire_connections()
                if attempt + 1 < attempts:
                    log.info("database connection lost (%s); retrying on a fresh one", exc)
                    continue
                raise ServiceUnavailable(f"the database is unavailable: {exc}") from exc
        raise AssertionError("unreachable")

    async def _once(self, job: Job[T]) -> T:
        pool = self._pool
        if pool is None:
            raise ServiceUnavailable("the database is not open")
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            try:
                return await job(conn)
            except asyncpg.InternalClientError as exc:
                # The server's goodbye (e.g. pg_terminate_backend, a restart) reached an idle
                # connection just before this job used it: the connection is unusable.
                conn.terminate()
                raise ConnectionLost(str(exc)) from exc


def is_connection_lost(exc: BaseException) -> bool:
    """Whether an error means the connection or the server is gone (not a failed statement)."""
    if isinstance(exc, asyncpg.InterfaceError):  # also raised for misuse: look at the message
        return "closed" in str(exc)
    return isinstance(exc, CONNECTION_ERRORS)


async def setup_connection(conn: asyncpg.Connection) -> None:
    """Decode and encode jsonb with orjson, in binary (a version byte, then the JSON text)."""
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="binary",
                              encoder=encode_jsonb, decoder=decode_jsonb)


def encode_jsonb(value: Any) -> bytes:
    """A jsonb parameter; bytes and str are taken as JSON text already encoded."""
    if isinstance(value, bytes):
        return b"\x01" + value
    if isinstance(value, str):
        return b"\x01" + value.encode()
    return b"\x01" + orjson.dumps(value)


def decode_jsonb(data: bytes) -> Any:
    """A jsonb value sent by the server in binary."""
    return orjson.loads(data[1:])


async def _reset(conn: asyncpg.Connection) -> None:
    # The default reset costs a round trip per release; urbis keeps no session state on pooled
    # connections, so only an unfinished transaction needs undoing.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")
