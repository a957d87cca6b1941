"""Helpers of the MQTT tests: the agent's transport on the local Mosquitto, a publisher."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from urbis.agents.iot_agent import IotAgent
from urbis.agents.mqtt import MqttTransport

MOSQUITTO = "mqtt://127.0.0.1:1883"


def unique(prefix: str) -> str:
    """A name no other test (or helper) on the shared Mosquitto uses."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def attach(agent: IotAgent, **options: Any) -> MqttTransport:
    """Connect the agent to Mosquitto and wait until it is subscribed."""
    transport = MqttTransport(MOSQUITTO, agent.ingest, client_id=unique("urbis-test-"),
                              session_expiry=5, **options)
    agent.use_mqtt(transport)
    transport.start()
    await asyncio.wait_for(transport.connected.wait(), 10)
    return transport


async def publish(topic: str, payload: bytes | str, qos: int = 1) -> None:
    """Publish one message as a device would."""
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=unique("dev-")) as client:
        await client.publish(topic, payload, qos=qos)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    """Wait until `check()` holds (polling), failing after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
