"""An embedded MQTT broker for `urbis serve --demo` when no `iota_mqtt_url` is set (amqtt).

Loopback only, anonymous, MQTT 3.1.1: a demo convenience, not for production (use Mosquitto,
EMQX or HiveMQ and set `iota_mqtt_url`).
"""

from __future__ import annotations

import logging
import socket
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """An amqtt broker on a free loopback port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = free_port(host)
        self._broker: Any = None

    @property
    def url(self) -> str:
        """The broker's mqtt:// URL."""
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen; RuntimeError if amqtt is not installed."""
        try:
            from amqtt.broker import Broker
        except ImportError as exc:  # an optional dependency
            raise RuntimeError("the embedded MQTT broker needs amqtt (pip install amqtt)") \
                from exc
        for name in ("amqtt", "transitions"):  # their INFO lines narrate every state change
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}}
        self._broker = Broker(config)
        await self._broker.start()

    async def close(self) -> None:
        """Stop listening."""
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
