"""Cache invalidations between worker processes through PostgreSQL LISTEN/NOTIFY.

A writer calls `announce` inside the transaction of its change, so the notification is sent
when (and only if) the change commits. Each process keeps one dedicated connection that
LISTENs on the channel and calls its subscribers (pooled connections are shared and renewed,
so they cannot hold a LISTEN). When that connection is lost, announcements made meanwhile are
lost too: once it is back, subscribers get TOPIC_ALL and drop every cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from urbis.context.errors import ServiceUnavailable
from urbis.storage.base import TOPIC_ALL, InvalidationListener
from urbis.storage.postgres.db import CONNECTION_ERRORS

log = logging.getLogger(__name__)
CHANNEL = "urbis_invalidate"
NOTIFY = f"SELECT pg_notify('{CHANNEL}', $1)"
MAX_PAYLOAD = 7900  # PostgreSQL refuses payloads of 8000 bytes or more
PING_SECONDS = 15.0  # a connection that died silently (no FIN) is found within this time
CONNECT_TIMEOUT = 10.0
RETRY_FIRST, RETRY_MAX = 0.2, 5.0  # reconnection back-off, in seconds


async def announce(conn: asyncpg.Connection, topic: str, key: str | None = None) -> None:
    """Announce a change to every process, on commit of the current transaction."""
    payload = topic if key is None else f"{topic}:{key}"
    if len(payload.encode()) > MAX_PAYLOAD:
        payload = topic  # too long to name: every key of the topic is stale
    await conn.execute(NOTIFY, payload)


def parse(payload: str) -> tuple[str, str | None]:
    """The (topic, key) of a notification payload."""
    topic, sep, key = payload.partition(":")
    return topic, key if sep else None


class PgInvalidationChannel:
    """InvalidationChannel on one LISTEN connection that reconnects by itself."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._listeners: list[InvalidationListener] = []
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.reconnections = 0

    def subscribe(self, listener: InvalidationListener) -> None:
        """Call `listener(topic, key)` for every announcement committed by any process."""
        self._listeners.append(listener)

    async def open(self) -> None:
        """LISTEN (ServiceUnavailable if the server is out of reach), then watch the line."""
        try:
            self._conn = await self._listen()
        except (*CONNECTION_ERRORS, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            raise ServiceUnavailable(f"the database is unavailable: {exc}") from exc
        self._task = asyncio.create_task(self._watch(), name="urbis-invalidations")

    async def close(self) -> None:
        """Stop listening."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()

    async def _listen(self) -> asyncpg.Connection:
        lost = self._lost = asyncio.Event()
        conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT)
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        if conn.is_closed():  # lost before the termination listener was in place
            raise ConnectionResetError("the LISTEN connection closed while it was set up")
        return conn

    async def _watch(self) -> None:
        """When the LISTEN connection is lost, reconnect and drop every cache."""
        while True:
            try:  # a closed socket is noticed at once, a silent one by the ping
                await asyncio.wait_for(self._lost.wait(), timeout=PING_SECONDS)
            except TimeoutError:
                if await self._alive():
                    continue
            log.warning("cache invalidations: the LISTEN connection was lost; reconnecting")
            await self._drop()
            self._conn = await self._reconnect()
            self.reconnections += 1
            log.info("cache invalidations: listening again; every cache is dropped")
            self._dispatch(TOPIC_ALL, None)

    async def _alive(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            await asyncio.wait_for(conn.execute("SELECT 1"), timeout=CONNECT_TIMEOUT)
        except Exception:  # whatever it is, a connection that cannot answer is replaced
            return False
        return True

    async def _reconnect(self) -> asyncpg.Connection:
        delay = RETRY_FIRST
        while True:
            await asyncio.sleep(delay)
            try:
                return await self._listen()
            except Exception as exc:  # whatever the failure, this task must keep trying
                log.debug("cache invalidations: cannot reconnect yet (%r)", exc)
                delay = min(delay * 2, RETRY_MAX)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        self._dispatch(*parse(str(payload)))

    def _dispatch(self, topic: str, key: str | None) -> None:
        for listener in self._listeners:
            try:
                listener(topic, key)
            except Exception:
                log.exception("cache invalidation %s %s failed", topic, key)
