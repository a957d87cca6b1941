"""Shared fixtures: stores over every backend, a broker, an HTTP client on the ASGI app."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx
import pytest

from urbis.api.app import create_app
from urbis.broker.container import Broker, build_broker
from urbis.settings import Settings, load_settings
from urbis.storage.base import EntityStore
from urbis.storage.registry import open_stores

# Most tests exercise the broker, not access control: servers they start and settings read
# from the environment run without authentication. Security tests turn it on explicitly.
os.environ.setdefault("URBIS_AUTH", "false")
# `urbis serve` processes started by tests do not bind the IoT agent ports (4041, 7896) unless
# a test asks for them: several servers run at once.
os.environ.setdefault("URBIS_IOTA_PORT", "0")
os.environ.setdefault("URBIS_IOTA_HTTP_PORT", "0")

BACKENDS = ["sqlite"]
if os.environ.get("URBIS_TEST_DATABASE_URL"):
    BACKENDS.append("postgresql")


T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own loop and thread (these fixtures are sync)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name."""
    return urlparse(url)._replace(path="/" + name).geturl()


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _empty(url: str) -> None:
    import asyncpg

    from urbis.storage.postgres.schema import migrate

    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
        await conn.execute("TRUNCATE entities, geo, tenants, jsonld_contexts, subscriptions, "
                           "subscription_types, subscription_attrs, notify_changes, "
                           "notify_retries, temporal_entities, temporal_series, "
                           "temporal_instances, temporal_rollups, temporal_pending, api_keys, "
                           "audit_log, iot_groups, iot_devices, iot_dead_letters, registrations, "
                           "registration_entities, registration_attrs, registration_changes, "
                           "csource_subscriptions, csource_subscription_types, "
                           "csource_subscription_attrs RESTART IDENTITY")
        await conn.execute("UPDATE audit_chain SET anchor_pos = 0, anchor_hash = '', "
                           "anchor_at = NULL, head_pos = 0, head_hash = ''")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database of this session on URBIS_TEST_DATABASE_URL's server, dropped at the end."""
    base = os.environ["URBIS_TEST_DATABASE_URL"]
    name = f"urbis_test_{uuid.uuid4().hex[:12]}"
    run_sync(_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(base, name)
    finally:
        run_sync(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store URL of a backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/urbis.db"
    url: str = request.getfixturevalue("pg_database")
    run_sync(_empty(url))
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each storage backend in turn."""
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """Settings on a fresh store of the backend."""
    return load_settings(env={}, store=store_url(backend, tmp_path, request),
                         sqlite_synchronous="normal", auth=False)


@pytest.fixture
async def entity_store(settings: Settings) -> AsyncIterator[EntityStore]:
    """An opened EntityStore of the backend."""
    stores = await open_stores(settings.store, synchronous="normal")
    yield stores.entities
    await stores.close()


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    """The services on a fresh store."""
    b = await build_broker(settings)
    yield b
    await b.close()


@pytest.fixture
async def client(settings: Settings, broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the ASGI app (no network)."""
    app = create_app(settings, broker=broker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        yield c
