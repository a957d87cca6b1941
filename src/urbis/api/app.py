"""The ASGI application: NGSI-LD API under /ngsi-ld/v1, /health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from urbis import __version__
from urbis.agents.feed_schedule import build_feed_service
from urbis.api import admin
from urbis.api.auth import UNRESTRICTED, Authentication, RateLimiter, challenge, identity_of
from urbis.api.iota.servers import AgentServers
from urbis.api.limits import BodyLimit
from urbis.api.ngsild import (
    batch,
    contexts,
    csource_subscriptions,
    discovery,
    entities,
    registrations,
    subscriptions,
    temporal,
)
from urbis.api.responses import json_response, problem_response
from urbis.broker.container import Broker, build_broker
from urbis.broker.samples import load_samples
from urbis.context.errors import (
    AlreadyExists,
    InternalError,
    InvalidRequest,
    NgsiError,
    OperationNotSupported,
    ResourceNotFound,
)
from urbis.observability.metrics import HttpMetrics, render
from urbis.observability.requests import RequestSupport
from urbis.settings import Settings

log = logging.getLogger("urbis.api")
# Response headers a browser client may read (pagination, counts, @context, tracing).
EXPOSED_HEADERS = ["Link", "Location", "NGSILD-Results-Count", "NGSILD-Tenant",
                   "NGSILD-Warning", "Content-Range", "X-Request-Id"]


async def health(request: Request) -> Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok", "version": __version__})


async def ready(request: Request) -> Response:
    """Readiness: every store answers (503 with the failing ones otherwise)."""
    ok, report = await request.app.state.broker.support.ready()
    return json_response({"status": "ready" if ok else "unavailable", "checks": report},
                         status=200 if ok else 503)


async def metrics(request: Request) -> Response:
    """Prometheus exposition of this process (all workers in multiprocess mode)."""
    settings: Settings = request.app.state.settings
    actor = identity_of(request.scope).actor("")
    if settings.metrics_public:
        actor = UNRESTRICTED.actor("")
    body, content_type = render([await request.app.state.broker.support.gauges(actor)])
    return Response(body, media_type=content_type)


async def on_ngsi_error(request: Request, exc: Exception) -> Response:
    """Render NGSI-LD errors as problem+json (with WWW-Authenticate / Retry-After if due)."""
    assert isinstance(exc, NgsiError)
    return problem_response(exc, challenge(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) as problem+json."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return problem_response(ResourceNotFound(f"no resource at {request.url.path}"))
    if exc.status_code == 405:
        err = OperationNotSupported(f"{request.method} is not supported on {request.url.path}")
        err.status = 405
        return problem_response(err)
    return problem_response(InvalidRequest(str(exc.detail)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: logged with its traceback, answered with a bare 500 problem."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(InternalError("an unexpected error occurred; it has been logged"))


async def secure(settings: Settings, broker: Broker) -> None:
    """With auth on, make sure an admin can get in; with auth off, say so loudly."""
    if not settings.auth:
        log.warning("AUTHENTICATION IS OFF (--no-auth / URBIS_AUTH=false): every caller is "
                    "an admin of every tenant. Development only.")
        return
    if broker.apikeys is None:
        return
    try:
        secret = await broker.apikeys.bootstrap(settings.admin_key or None)
    except AlreadyExists:  # another worker registered URBIS_ADMIN_KEY at the same moment
        return
    if secret:
        print("urbis: created the first admin API key; it is shown this once, keep it safe:\n"
              f"urbis:     {secret}\n"
              "urbis: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; make "
              "more with `urbis apikey create` or POST /admin/apikeys", flush=True)


def create_app(settings: Settings, broker: Broker | None = None, demo: bool = False,
               iot_agent: bool = False) -> Starlette:
    """The urbis ASGI app; opens its broker at start-up unless one is given. With `iot_agent`
    (`urbis serve`) it also serves the IoT agent's ports (urbis.api.iota.servers)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = broker is None
        app.state.broker = broker if broker is not None else await build_broker(settings)
        await secure(settings, app.state.broker)
        if demo:
            count = await load_samples(app.state.broker)
            log.info("demo: %d sample entities loaded", count)
        if own:  # notifications are sent by the process serving the API
            await app.state.broker.notifier.start()
            if app.state.broker.csource_notifier is not None:
                await app.state.broker.csource_notifier.start()
            app.state.feeds = build_feed_service(settings, app.state.broker)
            await app.state.feeds.start()  # scheduled imports (connectors)
        agents = await AgentServers.start(settings, app.state.broker, demo) \
            if iot_agent else None
        app.state.iot_agent = agents.agent if agents is not None else None
        try:
            yield
        finally:
            if agents is not None:  # before the broker: queued measures are written
                await agents.close()
            if own:
                await app.state.feeds.close()
                await app.state.broker.close()

    ngsild = [*entities.routes, *batch.routes, *discovery.routes, *contexts.routes,
              *subscriptions.routes, *temporal.routes, *registrations.routes,
              *csource_subscriptions.routes]
    app = Starlette(
        routes=[Route("/health", health), Route("/ready", ready), Route("/metrics", metrics),
                Mount("/ngsi-ld/v1", routes=ngsild), Mount("/admin", routes=admin.routes)],
        lifespan=lifespan,
        exception_handlers={
            NgsiError: on_ngsi_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
    app.add_middleware(Authentication, enabled=settings.auth, limiter=limiter)
    if settings.cors_origins:
        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=EXPOSED_HEADERS)
    app.add_middleware(HttpMetrics)
    app.add_middleware(RequestSupport)  # outermost: every answer has its id and headers
    app.state.settings = settings
    if broker is not None:
        app.state.broker = broker
    return app
