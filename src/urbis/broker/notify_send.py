"""Send one notification to its endpoint: an HTTP(S) POST, or an MQTT(S) publication.

Each endpoint (scheme, host and port) gets `concurrency` sending slots of its own and a
bounded queue in front of them: a slow or dead endpoint fills its own slots and no others, and
the notifier defers to the outbox what finds the queue full. HTTP uses one aiohttp session
(keep-alive); MQTT keeps one connection per broker and credentials (aiomqtt), opened on first
use and again after an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import aiomqtt
import orjson

from urbis.context.notification import mqtt_payload
from urbis.context.subscription_endpoint import MQTT_QOS, MQTT_VERSION, mqtt_topic

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message on its way: where, the headers, the body, the endpoint's settings."""

    uri: str
    headers: dict[str, str]
    body: dict[str, Any]
    timeout: float  # seconds
    notifier_info: tuple[tuple[str, str], ...] = ()


def endpoint_key(uri: str) -> str:
    """The endpoint a URI belongs to, for the concurrency limits: scheme://host:port."""
    parts = urlsplit(uri)
    return f"{parts.scheme.lower()}://{parts.hostname}:{parts.port or ''}"


class Slots:
    """A few sending slots per endpoint, and a bounded queue in front of them."""

    def __init__(self, concurrency: int, max_waiting: int = 10_000) -> None:
        self.concurrency = concurrency
        self.max_waiting = max_waiting
        self._load: dict[str, int] = {}  # sending and waiting, per endpoint
        self._gates: dict[str, asyncio.Semaphore] = {}

    def load(self, key: str) -> int:
        """Sends of the endpoint in progress or waiting for a slot."""
        return self._load.get(key, 0)

    def full(self, key: str) -> bool:
        """True when the endpoint's queue is full: further sends wait in the outbox."""
        return self.load(key) >= self.concurrency + self.max_waiting

    @contextlib.asynccontextmanager
    async def slot(self, key: str) -> AsyncIterator[None]:
        """Hold one of the endpoint's slots (waiting for one to be free)."""
        self._load[key] = self._load.get(key, 0) + 1
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = asyncio.Semaphore(self.concurrency)
        try:
            async with gate:
                yield
        finally:
            left = self._load[key] - 1
            if left:
                self._load[key] = left
            else:  # idle endpoints are forgotten
                del self._load[key]
                self._gates.pop(key, None)


class Sender:
    """Sends notifications; `send` returns None when delivered, else what went wrong."""

    def __init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None  # made in the running loop
        self._mqtt: dict[tuple[Any, ...], aiomqtt.Client] = {}
        self._mqtt_locks: dict[tuple[Any, ...], asyncio.Lock] = {}

    async def close(self) -> None:
        """Close every connection."""
        if self._http is not None:
            await self._http.close()
            self._http = None
        for client in list(self._mqtt.values()):
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
        self._mqtt.clear()

    async def send(self, out: Outgoing) -> str | None:
        """Deliver one message; None on success (2xx, or accepted by the MQTT broker)."""
        try:
            if out.uri[:4].lower() == "mqtt":
                return await asyncio.wait_for(self._publish(out), out.timeout)
            return await self._post(out)
        except (aiohttp.ClientError, aiomqtt.MqttError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:500]

    async def _post(self, out: Outgoing) -> str | None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
                skip_auto_headers=("User-Agent",), headers={"User-Agent": "urbis"})
        async with self._http.post(out.uri, data=orjson.dumps(out.body), headers=out.headers,
                                   timeout=aiohttp.ClientTimeout(total=out.timeout),
                                   allow_redirects=False) as response:
            await response.read()
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status} from {out.uri}"[:500]

    async def _publish(self, out: Outgoing) -> str | None:
        info = dict(out.notifier_info)
        qos = int(info.get(MQTT_QOS, "0"))
        payload = orjson.dumps(mqtt_payload(out.headers, out.body))
        key, client = await self._client(out.uri, info.get(MQTT_VERSION, "mqtt3.1.1"))
        try:
            await client.publish(mqtt_topic(out.uri), payload, qos=qos)
        except aiomqtt.MqttError:
            await self._drop(key, client)
            raise
        return None

    async def _client(self, uri: str, version: str) -> tuple[tuple[Any, ...], aiomqtt.Client]:
        parts = urlsplit(uri)
        tls = parts.scheme.lower() == "mqtts"
        key = (tls, parts.hostname, parts.port, parts.username, parts.password, version)
        client = self._mqtt.get(key)
        if client is not None:
            return key, client
        async with self._mqtt_locks.setdefault(key, asyncio.Lock()):
            client = self._mqtt.get(key)
            if client is None:
                client = aiomqtt.Client(
                    parts.hostname or "localhost", parts.port or (8883 if tls else 1883),
                    username=unquote(parts.username) if parts.username else None,
                    password=unquote(parts.password) if parts.password else None,
                    identifier=f"urbis-{uuid.uuid4().hex[:12]}",
                    protocol=aiomqtt.ProtocolVersion.V5 if version == "mqtt5.0"
                    else aiomqtt.ProtocolVersion.V311,
                    tls_context=ssl.create_default_context() if tls else None,
                    max_queued_outgoing_messages=10000)
                await client.__aenter__()
                self._mqtt[key] = client
        return key, client

    async def _drop(self, key: tuple[Any, ...], client: aiomqtt.Client) -> None:
        if self._mqtt.get(key) is client:
            del self._mqtt[key]
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)
