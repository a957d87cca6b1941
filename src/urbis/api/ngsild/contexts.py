"""/jsonldContexts: add, list, serve, delete and reload @contexts (ETSI GS CIM 009, 5.13)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.api.auth import identity_of
from urbis.api.ngsild.common import tenant_of
from urbis.api.responses import JSON, JSON_LD, json_response
from urbis.context.actor import Actor
from urbis.context.errors import BadRequestData, InvalidRequest, UnsupportedMediaType

PATH = "/jsonldContexts"


def _actor(request: Request) -> Actor:
    client = request.client.host if request.client else None
    return identity_of(request.scope).actor(tenant_of(request), client)


def _service(request: Request) -> Any:
    return request.app.state.broker.contexts


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter (absent is false); BadRequestData for other values."""
    value = request.query_params.get(name)
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise BadRequestData(f"{name} must be true or false, not {value!r:.40}")


async def _body(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("", JSON, JSON_LD):
        raise UnsupportedMediaType(f"Content-Type {kind} is not supported; use {JSON} "
                                   f"or {JSON_LD}")
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as err:
        raise InvalidRequest(f"the request body is not valid JSON: {err}") from None


async def list_contexts(request: Request) -> Response:
    """List @contexts (5.13.3)."""
    details = _flag(request, "details")
    found = await _service(request).list(_actor(request), request.query_params.get("kind"),
                                         details)
    return json_response(found)


async def add_context(request: Request) -> Response:
    """Add @context (5.13.2): 201 with the new context's location."""
    stored = await _service(request).add_hosted(_actor(request), await _body(request))
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1{PATH}/{stored.id}"})


async def serve_context(request: Request) -> Response:
    """Serve @context (5.13.4): its content, or its metadata with details=true."""
    details = _flag(request, "details")
    found = await _service(request).serve(_actor(request), request.path_params["context_id"],
                                          details)
    return json_response(found)


async def delete_context(request: Request) -> Response:
    """Delete and Reload @context (5.13.5): 204."""
    reload = _flag(request, "reload")
    await _service(request).delete(_actor(request), request.path_params["context_id"], reload)
    return Response(status_code=204)


routes: list[Route] = [
    Route(PATH, list_contexts, methods=["GET"]),
    Route(PATH, add_context, methods=["POST"]),
    Route(PATH + "/{context_id:path}", serve_context, methods=["GET"]),
    Route(PATH + "/{context_id:path}", delete_context, methods=["DELETE"]),
]
