"""The feeds admin API: GET /admin/feeds (every feed's status), GET /admin/feeds/{name},
POST /admin/feeds/{name}/run (import now and answer with the run's report)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.agents.feed_schedule import FeedService
from urbis.api.auth import identity_of
from urbis.api.responses import json_response
from urbis.context.actor import Actor


def feed_service(request: Request) -> FeedService:
    """The app's feed service (one without feeds when the app was given its broker)."""
    service: FeedService | None = getattr(request.app.state, "feeds", None)
    if service is None:
        broker = request.app.state.broker
        service = request.app.state.feeds = FeedService(broker.batch, broker.contexts)
    return service


def _actor(request: Request) -> Actor:
    client = request.client.host if request.client else None
    return identity_of(request.scope).actor("", client)


async def list_feeds(request: Request) -> Response:
    """GET /admin/feeds: the status of every feed the caller's tenants hold."""
    return json_response(await feed_service(request).list(_actor(request)))


async def get_feed(request: Request) -> Response:
    """GET /admin/feeds/{name}: one feed's status."""
    name = request.path_params["name"]
    return json_response(await feed_service(request).get(_actor(request), name))


async def run_feed(request: Request) -> Response:
    """POST /admin/feeds/{name}/run: import now; 200 with the run's report."""
    name = request.path_params["name"]
    report = await feed_service(request).run(_actor(request), name)
    return json_response({"name": name, **report.to_json()})


routes = [
    Route("/feeds", list_feeds, methods=["GET"]),
    Route("/feeds/{name}", get_feed, methods=["GET"]),
    Route("/feeds/{name}/run", run_feed, methods=["POST"]),
]
