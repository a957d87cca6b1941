"""What the /iot adapters share: FIWARE headers onto the caller, FIWARE-shaped errors."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from urbis.agents.iot_agent import IotAgent
from urbis.api.auth import challenge, identity_of
from urbis.context.actor import DEFAULT_TENANT, Actor
from urbis.context.device_parse import fiware_header
from urbis.context.devices import fiware_name, wrong_syntax
from urbis.context.errors import NgsiError

log = logging.getLogger("urbis.iota")
JSON = "application/json"
# The rule of NGSILD-Tenant (urbis.api.ngsild.common): a fiware-service is read as that tenant.
_TENANT = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")


def fiware_response(error: NgsiError, headers: Mapping[str, str] | None = None) -> Response:
    """An error as the FIWARE IoT Agents answer it: {"name": ..., "message": ...}."""
    body: dict[str, Any] = {"name": fiware_name(error), "message": error.detail}
    if "reason" in error.extra:
        body["reason"] = error.extra["reason"]
    return Response(orjson.dumps(body), error.status, headers, JSON)


def json_body(body: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(orjson.dumps(body), status, media_type=JSON)


def agent(request: Request) -> IotAgent:
    """The process's IoT agent."""
    found: IotAgent = request.app.state.iot_agent
    return found


def tenant_of(request: Request) -> str:
    """The tenant of `fiware-service` (or `NGSILD-Tenant`); the default tenant when absent."""
    value = request.headers.get("fiware-service") or request.headers.get("ngsild-tenant")
    if not value:
        return DEFAULT_TENANT
    if not _TENANT.match(value):
        raise fiware_header(f"invalid fiware-service {value!r:.80}")
    return value


def actor_of(request: Request) -> Actor:
    """The caller, in the tenant its fiware-service names."""
    client = request.client.host if request.client else None
    return identity_of(request.scope).actor(tenant_of(request), client)


def service_path(request: Request) -> str | None:
    """The fiware-servicepath header (checked by the services)."""
    return request.headers.get("fiware-servicepath")


async def read_json(request: Request) -> Any:
    """The JSON body; WRONG_SYNTAX if it is not JSON."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise wrong_syntax(f"the body is not valid JSON: {exc}") from None


def int_param(request: Request, name: str) -> int | None:
    """An integer query parameter, if given."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise fiware_header(f"{name} must be an integer, got {raw!r:.40}") from None


async def on_error(request: Request, exc: Exception) -> Response:
    """NgsiError (from the services and the middleware) in the FIWARE shape."""
    assert isinstance(exc, NgsiError)
    return fiware_response(exc, challenge(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method)."""
    assert isinstance(exc, HTTPException)
    names = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    body = {"name": names.get(exc.status_code, "BAD_REQUEST"),
            "message": f"{request.method} {request.url.path}: {exc.detail}"}
    return Response(orjson.dumps(body), exc.status_code, media_type=JSON)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: logged, a bare 500."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    body = {"name": "INTERNAL_ERROR", "message": "an unexpected error occurred; it is logged"}
    return Response(orjson.dumps(body), 500, media_type=JSON)
