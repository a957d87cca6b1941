"""Serve the IoT agent's apps next to the NGSI-LD API: same process, same event loop.

`AgentServers.start` (called from the NGSI-LD app's lifespan by `urbis serve`) builds the IoT
agent on the process's broker, binds the provisioning port (`iota_port`) and the southbound
port (`iota_http_port`) itself, so that a port in use fails the start-up with a clear error, and
runs one uvicorn server per port as a task of the running loop; the NGSI-LD server keeps the
signal handling. With `--workers N` every worker does the same on the same ports with
SO_REUSEPORT, and the kernel spreads the connections over the workers (their caches follow the
store's invalidations, the dead-letter log is in the store). `close` stops accepting, lets
requests in flight finish, then writes what the agent has queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette

from urbis.agents.iot_agent import IotAgent, build_iot_agent
from urbis.api.iota.apps import provisioning_app, southbound_app
from urbis.broker.container import Broker
from urbis.settings import Settings

log = logging.getLogger("urbis.iota")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the main server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class AgentServers:
    """The IoT agent of this process and the servers of its ports."""

    agent: IotAgent
    servers: list[_Server] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings, broker: Broker, demo: bool = False
                    ) -> AgentServers:
        """Build the agent (MQTT too, if configured or in the demo) and serve its ports."""
        agent = build_iot_agent(settings, broker)
        self = cls(agent)
        try:
            await agent.start_mqtt(settings, demo)
            agent.start()
            for port, app in ((settings.iota_port, provisioning_app),
                              (settings.iota_http_port, southbound_app)):
                if port:
                    self._serve(settings, port, app(settings, broker, agent))
        except BaseException:
            await self.close()
            raise
        return self

    def _serve(self, settings: Settings, port: int, app: Starlette) -> None:
        sock = bind(settings.host, port, reuse_port=settings.workers > 1)
        config = uvicorn.Config(app, lifespan="off", log_level=settings.log_level,
                                access_log=False, log_config=None,
                                ssl_certfile=settings.tls_certfile or None,
                                ssl_keyfile=settings.tls_keyfile or None)
        server = _Server(config)
        self.servers.append(server)
        self.tasks.append(asyncio.create_task(server.serve(sockets=[sock]),
                                              name=f"urbis-iota-{port}"))

    async def close(self) -> None:
        """Stop the servers (requests in flight finish), then flush the agent."""
        for server in self.servers:
            server.should_exit = True
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.agent.close()
