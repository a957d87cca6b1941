"""What the bench measures a server on: SQLite in a durability mode, or PostgreSQL with N workers.

A PostgreSQL run gets a database of its own, created for it on the server that `--pg-url`
names and dropped at the end (also when the run fails): `<name in the URL>_<pid>_<time>`,
so concurrent benches and test sessions on the same server never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse, urlunparse

import asyncpg

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
BACKENDS = {"sqlite": SQLITE, "pg": POSTGRESQL, "postgresql": POSTGRESQL}
# The database runs on this machine: over its Unix socket when there is one (what a host
# running both would use; loopback TCP costs urbis ~30 % more CPU per query here).
PG_SOCKET_DIR = "/var/run/postgresql"
DEFAULT_PG_URL = (f"postgresql://postgres@/urbis_bench?host={PG_SOCKET_DIR}"
                  if os.path.exists(f"{PG_SOCKET_DIR}/.s.PGSQL.5432")
                  else "postgresql://postgres@127.0.0.1:5432/urbis_bench")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Setup:
    """One measured configuration: a fresh server and store each."""

    backend: str
    synchronous: str | None = None  # SQLite only: full or normal
    workers: int = 1

    @property
    def label(self) -> str:
        """Short and file-name safe: sqlite-full, pg-2w."""
        if self.backend == SQLITE:
            return f"sqlite-{self.synchronous}"
        return f"pg-{self.workers}w"

    @property
    def column(self) -> str:
        """The name of its column in the targets table."""
        if self.backend == SQLITE:
            return f"{self.synchronous}"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}"

    @property
    def title(self) -> str:
        """How the docs and the console name it."""
        if self.backend == SQLITE:
            return f"SQLite, `URBIS_SQLITE_SYNCHRONOUS={self.synchronous}`"
        return f"PostgreSQL, {self.column}"

    def describe(self) -> dict[str, Any]:
        """The fields a run records about its setup."""
        return {"backend": self.backend, "synchronous": self.synchronous,
                "workers": self.workers, "label": self.label, "column": self.column,
                "title": self.title}


def setups(backends: list[str], sync_modes: list[str], workers: list[int]) -> list[Setup]:
    """Every configuration to measure, SQLite first."""
    out: list[Setup] = []
    for backend in dict.fromkeys(BACKENDS[b] for b in backends):
        if backend == SQLITE:
            out += [Setup(SQLITE, synchronous=mode) for mode in sync_modes]
        else:
            out += [Setup(POSTGRESQL, workers=n) for n in workers]
    return out


def database_name(url: str, pid: int | None = None, now: float | None = None) -> str:
    """A new database name: the URL's, plus the process id and the time."""
    base = urlparse(url).path.lstrip("/") or "urbis_bench"
    base = re.sub(r"[^a-z0-9_]", "_", base.lower())[:40]
    stamp = int(time.time() if now is None else now)
    return f"{base}_{os.getpid() if pid is None else pid}_{stamp}"


def with_database(url: str, name: str) -> str:
    """The same server URL with another database."""
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{name}"))


def check_url(url: str) -> str | None:
    """What is wrong with a --pg-url, or None."""
    parts = urlparse(url)
    if parts.scheme not in ("postgresql", "postgres") or not (
            parts.hostname or "host=/" in parts.query):
        return ("--pg-url must be postgresql://user@host:port/name (or, over a Unix socket, "
                f"postgresql://user@/name?host=/socket/dir), got {url!r}")
    return None


async def _admin(url: str, *statements: str) -> list[Any]:
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=10)
    try:
        return [await conn.fetchval(sql) for sql in statements]
    finally:
        await conn.close()


class DatabaseUnavailable(RuntimeError):
    """The PostgreSQL server of --pg-url cannot be used."""


def server_info(url: str) -> dict[str, Any]:
    """Version and the settings that matter to write throughput, of the server."""
    names = ("server_version", "shared_buffers", "synchronous_commit", "fsync",
             "wal_level", "commit_delay", "max_connections")
    try:
        values = asyncio.run(_admin(url, *(f"SHOW {n}" for n in names)))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"cannot use the PostgreSQL server of {url} ({exc}); start it, point --pg-url "
            "(URBIS_BENCH_PG_URL) at one, or measure SQLite only: --backends sqlite") from exc
    info = dict(zip(names, values, strict=True))
    info["connection"] = "Unix socket" if "host=/" in urlparse(url).query else "loopback TCP"
    return info


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of `url`; its URL. Dropped on exit."""
    name = database_name(url)
    if not _NAME.match(name):
        raise ValueError(f"bad database name {name!r}")
    asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(url, name)
    finally:
        asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
