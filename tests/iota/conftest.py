"""Fixtures of the IoT agent tests: the agent on the test broker, its two apps as clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from urbis.agents.iot_agent import IotAgent, build_iot_agent
from urbis.api.iota.apps import provisioning_app, southbound_app
from urbis.broker.container import Broker
from urbis.settings import Settings


@pytest.fixture
async def agent(settings: Settings, broker: Broker) -> AsyncIterator[IotAgent]:
    """The IoT agent on the test broker (short batching delay)."""
    built = build_iot_agent(replace(settings, iota_batch_delay=0.002), broker)
    built.start()
    yield built
    await built.close()


def _client(app: Any, base: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base)


@pytest.fixture
async def iota(settings: Settings, broker: Broker, agent: IotAgent
               ) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the provisioning app (port 4041)."""
    async with _client(provisioning_app(settings, broker, agent), "http://iota.test") as c:
        yield c


@pytest.fixture
async def south(settings: Settings, broker: Broker, agent: IotAgent
                ) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the southbound app (port 7896)."""
    async with _client(southbound_app(settings, broker, agent), "http://south.test") as c:
        yield c
