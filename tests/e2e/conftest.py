"""Fixtures of the end-to-end tests: servers stopped after each test, a PostgreSQL proxy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import pytest
from e2e_servers import PG_URL, Server, TcpProxy, start_server


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start servers with `serve(store, *args)`; they are stopped after the test."""
    servers: list[Server] = []

    def start(store: str, *extra: str) -> Server:
        servers.append(start_server(store, *extra))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def pg_proxy() -> Iterator[TcpProxy]:
    """A proxy to the test PostgreSQL server, up."""
    target = urlparse(PG_URL)
    proxy = TcpProxy((target.hostname or "127.0.0.1", target.port or 5432))
    proxy.up()
    yield proxy
    proxy.down()
