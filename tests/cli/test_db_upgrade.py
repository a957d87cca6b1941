"""`urbis db upgrade`: versions before and after, and clear exits on stores out of reach."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import asyncpg
import pytest

from urbis.cli.main import main
from urbis.storage.postgres import schema as pg_schema
from urbis.storage.registry import open_stores
from urbis.storage.sqlite import schema as sqlite_schema

PG = os.environ.get("URBIS_TEST_DATABASE_URL")
needs_pg = pytest.mark.skipif(not PG, reason="needs URBIS_TEST_DATABASE_URL")


def upgrade(store: str) -> int:
    """Run `urbis db upgrade --store STORE` in this process."""
    return main(["db", "upgrade", "--store", store])


def test_upgrade_an_empty_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    latest = len(sqlite_schema.MIGRATIONS)
    assert upgrade(f"sqlite:///{path}") == 0
    assert capsys.readouterr().out.endswith(f"schema version 0 -> {latest}\n")
    assert upgrade(f"sqlite:///{path}") == 0
    assert f"schema version {latest} -> {latest} (already up to date)" in capsys.readouterr().out

    async def opens() -> bool:
        stores = await open_stores(f"sqlite:///{path}")
        try:
            return await stores.entities.tenant_exists("x")
        finally:
            await stores.close()

    assert asyncio.run(opens()) is False


def test_sqlite_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 999")
    assert upgrade(f"sqlite:///{newer}") == 1
    assert "version 999) is newer than this urbis" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("not a database, but long enough to have a header of its own " * 4)
    assert upgrade(f"sqlite:///{text}") == 2
    err = capsys.readouterr().err
    assert "cannot open the store" in err and "Traceback" not in err
    assert upgrade("sqlite:///") == 2
    assert upgrade("mysql://localhost/urbis") == 2
    assert "bad configuration" in capsys.readouterr().err


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    assert PG is not None
    name = f"urbis_upgrade_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlparse(PG)._replace(path="/" + name).geturl()
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@needs_pg
def test_upgrade_a_postgres_database(fresh_pg: str, capsys: pytest.CaptureFixture[str]) -> None:
    latest = len(pg_schema.MIGRATIONS)
    assert upgrade(fresh_pg) == 0
    assert capsys.readouterr().out.endswith(f"schema version 0 -> {latest}\n")
    assert upgrade(fresh_pg) == 0
    assert f"{latest} -> {latest} (already up to date)" in capsys.readouterr().out


@needs_pg
def test_postgres_out_of_reach(capsys: pytest.CaptureFixture[str]) -> None:
    assert PG is not None
    missing = urlparse(PG)._replace(path=f"/urbis_missing_{uuid.uuid4().hex[:8]}").geturl()
    assert upgrade(missing) == 2
    assert "does not exist" in capsys.readouterr().err
    assert upgrade("postgresql://postgres:hunter2@127.0.0.1:1/urbis") == 2
    err = capsys.readouterr().err
    assert "cannot open the store postgresql://postgres:***@127.0.0.1:1/urbis" in err
    assert "hunter2" not in err and "Traceback" not in err
    assert upgrade("postgresql://postgres@127.0.0.1:notaport/urbis") == 2
