"""SQLite access: one writer thread with group commit, reader connections for queries.

Writes are queued to a single writer thread which runs every queued job in one transaction
(each job in its own SAVEPOINT, so one failing job never undoes the others), commits once, and
only then resolves the callers' futures: a 2xx after `write()` means the change is durable,
and many concurrent requests share one fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from urbis.storage.sqlite.schema import migrate

T = TypeVar("T")
log = logging.getLogger(__name__)
_STOP = object()
MAX_GROUP = 256


def connect(path: str, setup: Callable[[sqlite3.Connection], None] | None = None,
            synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection with the pragmas urbis relies on."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                           cached_statements=512)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous.upper() == 'FULL' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA mmap_size=268435456")
    # Checkpoints run on a background thread (Database._checkpoint_loop), off the commit path.
    conn.execute("PRAGMA wal_autocheckpoint=0")
    if setup is not None:
        setup(conn)
    return conn


class Database:
    """A SQLite database file shared by one writer thread and a pool of readers."""

    def __init__(self, path: str, *, readers: int = 2, synchronous: str = "FULL",
                 setup: Callable[[sqlite3.Connection], None] | None = None) -> None:
        self.path = path
        self.synchronous = synchronous
        self._setup = setup
        self._readers = readers
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._inline: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None

    async def open(self) -> None:
        """Create the file and schema, start the writer thread and the reader pool."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path, self._setup, self.synchronous)
        migrate(conn)
        self._writer = threading.Thread(target=self._write_loop, args=(conn,),
                                        name="urbis-sqlite-writer", daemon=True)
        self._writer.start()
        self._pool = ThreadPoolExecutor(self._readers, thread_name_prefix="urbis-sqlite-reader")
        self._inline = connect(self.path, self._setup, self.synchronous)
        self._stop.clear()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop,
                                              name="urbis-sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    async def close(self) -> None:
        """Finish queued writes, checkpoint the WAL and close every connection."""
        self._stop.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._inline is not None:
            self._inline.close()
            self._inline = None

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job` in the writer's transaction; returns once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, future, loop))
        return await future

    async def read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only `job` on a reader thread (for queries that may take a while)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run_read, job)

    def read_inline(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run a cheap read (a primary-key look-up) on the calling thread."""
        assert self._inline is not None, "database is not open"
        return job(self._inline)

    def _run_read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path, self._setup, self.synchronous)
        return job(conn)

    def _checkpoint_loop(self, interval: float = 1.0) -> None:
        """Copy the WAL back into the database file now and then, without blocking commits."""
        conn = connect(self.path, None, self.synchronous)
        try:
            while not self._stop.wait(interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    log.warning("sqlite checkpoint failed", exc_info=True)
        finally:
            conn.close()

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    return
                batch = [first]
                while len(batch) < MAX_GROUP:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        self._queue.put(_STOP)
                        break
                    batch.append(item)
                self._run_group(conn, batch)
        finally:
            conn.close()

    def _run_group(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, _future, _loop in batch:
                results.append(self._run_job(conn, job))
            conn.execute("COMMIT")
        except Exception as exc:  # the commit itself failed: nothing is durable
            log.exception("sqlite group commit failed")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            results = [(False, exc)] * len(batch)
        for (ok, value), (_job, future, loop) in zip(results, batch, strict=True):
            loop.call_soon_threadsafe(_resolve, future, ok, value)

    @staticmethod
    def _run_job(conn: sqlite3.Connection, job: Callable[[sqlite3.Connection], Any]
                 ) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT job")
        try:
            value = job(conn)
        except BaseException as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            return False, exc
        conn.execute("RELEASE job")
        return True, value


def _resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
