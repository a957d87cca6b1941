"""The MQTT transport of the IoT agent: device topics in, commands out (aiomqtt, MQTT 5).

The agent connects to `iota_mqtt_url` with a persistent session (client id
`iota_mqtt_client_id`, clean start off), subscribes to the topics of
`urbis.agents.mqtt_topics` and hands each message to the ingestion pipeline:

- QoS 1: acknowledged only once its measures are durable (paho's manual acks): a message the
  agent received but had not written when it stopped is delivered again by the broker
  (at least once). A message the pipeline rejects (dead letter) is acknowledged too; one the
  store could not write is left unacknowledged, and the agent reconnects (with the backoff)
  so that the broker sends it again.
- QoS 0: fire and forget (at most once), as the protocol says.

Messages enter the write queue in the order they arrived (no task per message), while up to
`RECEIVE_MAXIMUM` (the MQTT 5 Receive Maximum the broker honours) wait for their write; a full
write queue stops reading, which the broker sees as backpressure. A lost connection is retried
with exponential backoff (1 s to 30 s). One bad message never stops the loop: it is a dead
letter and a metric (`urbis_agent_measures_total{agent="mqtt"}`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from urbis.agents.ingest import IngestService, Rejected, Uplink
from urbis.agents.mqtt_topics import ATTRS, Topic, address, parse, subscriptions
from urbis.context.devices import OVERLOADED, STORE
from urbis.context.model import now_iso

log = logging.getLogger(__name__)
RECEIVE_MAXIMUM = 10_000
SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps the agent's session while it is away
BACKOFF = (1.0, 30.0)
TRANSPORT = "mqtt"
Handler = Callable[[Topic, bytes], Awaitable[None]]


def _refused_v5(exc: Exception) -> bool:
    """A broker that refuses MQTT 5 in its CONNACK (amqtt does not answer: see v5=False)."""
    return isinstance(exc, MqttConnectError)


class MqttTransport:
    """One connection to the MQTT broker: subscriptions, the message loop, publishing."""

    def __init__(self, url: str, ingest: IngestService, *, client_id: str = "urbis-iota",
                 qos: int = 1, shared: bool = False, v5: bool = True,
                 session_expiry: int = SESSION_EXPIRY) -> None:
        self.broker = address(url)
        self.v5 = v5  # MQTT 5 (Receive Maximum); 3.1.1 for brokers without it (amqtt)
        # a worker's session (named by its pid) must not outlive it: a shared subscription
        # of a gone session would still take its share of the messages
        self.session_expiry = 0 if shared else session_expiry
        self._v5_worked = False
        self._delay = BACKOFF[0]
        self._retrying = False  # a reconnection to get unwritten messages again is under way
        self._failed = False  # the last message settled was not written (store down, full)
        self.ingest = ingest
        self.qos = qos
        self.client_id = f"{client_id}-{os.getpid()}" if shared else client_id
        self.shared = client_id if shared else None
        self.handlers: dict[str, Handler] = {}  # cmdexe, configuration: the commands service
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Connect and consume in the background (reconnecting until closed)."""
        self._task = asyncio.create_task(self._run(), name="urbis-iota-mqtt")

    async def close(self) -> None:
        """Stop consuming; messages in flight finish (and are acknowledged) first."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=10)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        """Publish a message (a command); ConnectionError while the broker is out of reach."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise ConnectionError("the MQTT broker is not connected")
        try:
            await client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError as exc:
            raise ConnectionError(f"MQTT publish failed: {exc}") from None

    # --- the connection --------------------------------------------------------------------

    def _new_client(self) -> aiomqtt.Client:
        b = self.broker
        extra: dict[str, Any] = {"clean_session": self.shared is not None}
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            extra = {"protocol": aiomqtt.ProtocolVersion.V5, "properties": props,
                     "clean_start": self.shared is not None}
        client = aiomqtt.Client(
            b.host, b.port, username=b.username, password=b.password,
            identifier=self.client_id, timeout=10,
            tls_context=ssl.create_default_context() if b.tls else None, **extra)
        client._client.manual_ack_set(True)  # PUBACK once durable (aiomqtt has no API for it)
        return client

    async def _run(self) -> None:
        while True:
            try:
                async with self._new_client() as client:
                    self._client = client
                    await self._subscribe(client)
                    self.connected.set()
                    self._v5_worked, self._retrying = self.v5, False
                    log.info("iot agent: MQTT connected to %s:%d", self.broker.host,
                             self.broker.port)
                    if not self._failed:
                        self._delay = BACKOFF[0]
                    await self._consume(client)
            except aiomqtt.MqttError as exc:
                if self.v5 and not self._v5_worked and _refused_v5(exc):
                    log.warning("iot agent: MQTT 5 refused (%s); using MQTT 3.1.1", exc)
                    self.v5 = False  # a broker without MQTT 5 (amqtt): speak 3.1.1 to it
                    continue
                if not self._retrying:
                    log.warning("iot agent: MQTT broker %s:%d unreachable (%s); retrying in "
                                "%.0f s", self.broker.host, self.broker.port, exc, self._delay)
            finally:
                self.connected.clear()
                self._client = None
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, BACKOFF[1])

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        await client.subscribe([(t, self.qos) for t in subscriptions(self.shared)])

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                await self._dispatch(client, message)
            except Exception:  # a bug on one message must not stop the others
                log.exception("iot agent: MQTT message on %s failed", message.topic.value)
                self._ack(client, message)

    # --- one message -----------------------------------------------------------------------

    async def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = parse(message.topic.value)
        payload = message.payload if isinstance(message.payload, bytes) else \
            str(message.payload or "").encode()
        if topic is None:
            self.ingest.dead.record(None, "", "", TRANSPORT, "unknown_topic",
                                    f"not an IoT agent topic: {message.topic.value[:200]}",
                                    payload)
            self._ack(client, message)
        elif topic.kind != ATTRS:  # command answers, configuration requests: rare
            task = asyncio.ensure_future(self._handle(client, message, topic, payload))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        else:
            uplink = Uplink(topic.apikey, topic.device_id, payload, format=topic.format,
                            attr=topic.attr, transport=TRANSPORT, received_at=now_iso())
            if message.qos == 0:
                await self.ingest.post(uplink)
            else:
                await self.ingest.enqueue(uplink, lambda err: self._written(client, message,
                                                                            err))

    def _written(self, client: aiomqtt.Client, message: aiomqtt.Message,
                 err: Rejected | None) -> None:
        """Acknowledge once durable, or rejected for good (a dead letter). A message the store
        could not take is not acknowledged: the agent reconnects (with the backoff) so that
        the broker sends it again rather than holding it in flight."""
        if err is None or err.reason not in (STORE, OVERLOADED):
            if self._failed:
                self._failed, self._delay = False, BACKOFF[0]
            self._ack(client, message)
        elif not self._retrying:
            self._failed = self._retrying = True
            log.warning("iot agent: MQTT messages not written (%s); reconnecting in %.0f s to "
                        "receive them again", err.reason, self._delay)
            client._client.disconnect()

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message, topic: Topic,
                      payload: bytes) -> None:
        handler = self.handlers.get(topic.kind)
        try:
            if handler is not None:
                await handler(topic, payload)
            else:
                self.ingest.dead.record(None, topic.apikey, topic.device_id, TRANSPORT,
                                        "unsupported", f"no handler for {topic.kind} messages",
                                        payload)
        except Exception:
            log.exception("iot agent: MQTT %s message of %s failed", topic.kind,
                          topic.device_id[:80])
        self._ack(client, message)

    @staticmethod
    def _ack(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if message.qos > 0:
            client._client.ack(message.mid, message.qos)
