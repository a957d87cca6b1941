"""Fixtures of the feed tests: a feed service on the test broker, a loopback HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from feedkit import Served

from urbis.agents.feed_schedule import FeedService
from urbis.broker.container import Broker


@pytest.fixture
def feeds(broker: Broker) -> FeedService:
    """A feed service (no scheduled feeds) on the test broker."""
    broker.contexts.preload_bundled()  # the Smart Data Models @contexts, offline
    return FeedService(broker.batch, broker.contexts)


@pytest.fixture
async def server() -> AsyncIterator[Served]:
    """A real HTTP server on 127.0.0.1 (a free port); tests add handlers to `routes`."""
    served = Served("")

    async def dispatch(request: web.Request) -> web.StreamResponse:
        served.requests.append(request)
        handler = served.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such file")
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    served.url = f"http://127.0.0.1:{port}"
    try:
        yield served
    finally:
        await runner.cleanup()
