"""Shared fixtures: stores over every backend, a broker, an HTTP client on the ASGI app."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from urbis.api.app import create_app
from urbis.broker.container import Broker, build_broker
from urbis.settings import Settings, load_settings
from urbis.storage.base import EntityStore
from urbis.storage.registry import open_stores

BACKENDS = ["sqlite"]
if os.environ.get("URBIS_TEST_DATABASE_URL"):
    BACKENDS.append("postgresql")


def store_url(backend: str, tmp_path: Path) -> str:
    """A fresh store URL of a backend."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/urbis.db"
    return os.environ["URBIS_TEST_DATABASE_URL"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each storage backend in turn."""
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Settings:
    """Settings on a fresh store of the backend."""
    return load_settings(env={}, store=store_url(backend, tmp_path), sqlite_synchronous="normal")


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
