"""The two ASGI apps of the IoT agent: provisioning (port iota_port) and southbound
(iota_http_port). Both run on the broker and IoT agent of the NGSI-LD app's process."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis import __version__
from urbis.agents.iot_agent import IotAgent
from urbis.api.auth import Authentication, RateLimiter
from urbis.api.iota import provisioning, southbound
from urbis.api.iota.common import (
    fiware_response,
    json_body,
    on_error,
    on_http_error,
    on_unexpected,
)
from urbis.api.limits import BodyLimit
from urbis.broker.container import Broker
from urbis.context.errors import NgsiError
from urbis.decoders.base import MAX_PAYLOAD_BYTES
from urbis.observability.metrics import HttpMetrics
from urbis.observability.requests import RequestSupport
from urbis.settings import Settings

_HANDLERS = {NgsiError: on_error, HTTPException: on_http_error, Exception: on_unexpected}


async def health(request: Request) -> Response:
    """Liveness: the process answers."""
    return json_body({"status": "ok", "version": __version__})


def _app(settings: Settings, broker: Broker, agent: IotAgent, routes: list[Route]
         ) -> Starlette:
    app = Starlette(routes=[Route("/health", health), *routes],
                    exception_handlers=dict(_HANDLERS))
    app.state.settings = settings
    app.state.broker = broker
    app.state.iot_agent = agent
    return app


def provisioning_app(settings: Settings, broker: Broker, agent: IotAgent) -> Starlette:
    """/iot/services, /iot/devices, /iot/deadletter: authenticated as the NGSI-LD API."""
    app = _app(settings, broker, agent, provisioning.routes)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, render=fiware_response)
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
    app.add_middleware(Authentication, enabled=settings.auth, limiter=limiter,
                       render=fiware_response)
    app.add_middleware(HttpMetrics)
    app.add_middleware(RequestSupport)
    return app


def southbound_app(settings: Settings, broker: Broker, agent: IotAgent) -> Starlette:
    """/iot/json, /iot/d: devices, identified by their apikey."""
    app = _app(settings, broker, agent, southbound.routes)
    app.add_middleware(BodyLimit, max_bytes=MAX_PAYLOAD_BYTES, render=fiware_response)
    app.add_middleware(HttpMetrics)
    return app
