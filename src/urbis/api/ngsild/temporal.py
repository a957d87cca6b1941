"""HTTP adapter for /temporal/entities (ETSI GS CIM 009 clauses 6.18-6.22, 6.24)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.api.ngsild.batch import _query_params as query_object_params
from urbis.api.ngsild.common import entity_response, negotiate, read_json, request_context
from urbis.api.ngsild.entities import page_links
from urbis.broker.temporal import TemporalResult, TemporalService
from urbis.context.errors import BadRequestData, OperationNotSupported

_TEMPORAL_Q = ("timerel", "timeAt", "endTimeAt", "timeproperty", "lastN")


def _service(request: Request) -> TemporalService:
    service: TemporalService | None = request.app.state.broker.temporal
    if service is None:
        raise OperationNotSupported("this broker keeps no temporal history")
    return service


def _params(request: Request) -> dict[str, Any]:
    for key in request.query_params:
        if len(request.query_params.getlist(key)) > 1:
            raise BadRequestData(f"query parameter {key} is given more than once")
    return dict(request.query_params)


def _path(request: Request, name: str) -> str:
    return str(request.path_params[name])


async def create_or_update(request: Request) -> Response:
    """POST /temporal/entities: 201 for a new history, 204 when instances were added."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    entity_id, created = await _service(request).create_or_update(ctx.actor, body, ctx.tm)
    if created:
        return Response(status_code=201,
                        headers={"Location": f"/ngsi-ld/v1/temporal/entities/{entity_id}"})
    return Response(status_code=204)


async def query(request: Request) -> Response:
    """GET /temporal/entities."""
    params = _params(request)
    kind = negotiate(request)
    ctx = await request_context(request)
    result = await _service(request).query(ctx.actor, params, ctx.tm)
    return _respond(request, params, result, ctx, kind)


async def post_query(request: Request) -> Response:
    """POST /temporal/entityOperations/query: a Query object with a `temporalQ`."""
    kind = negotiate(request)
    body, inline = await read_json(request)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object ({"type": "Query", ...})')
    ctx = await request_context(request, inline)
    params = query_object_params(body, request)
    temporal_q = body.get("temporalQ", {})
    if not isinstance(temporal_q, dict):
        raise BadRequestData("temporalQ must be an object")
    params.update({k: str(temporal_q[k]) for k in _TEMPORAL_Q if k in temporal_q})
    result = await _service(request).query(ctx.actor, params, ctx.tm)
    return _respond(request, params, result, ctx, kind)


def _respond(request: Request, params: dict[str, Any], result: TemporalResult, ctx: Any,
             kind: str) -> Response:
    headers = _range_headers(result)
    query = result.request.query.entities
    if result.count is not None:
        headers["NGSILD-Results-Count"] = str(result.count)
    links = page_links(request, params, query.limit, query.offset, len(result.items),
                       result.count) if request.method == "GET" else ""
    status = 206 if result.truncated is not None else 200
    response = entity_response(result.items, ctx, kind, status, headers)
    if links:
        existing = response.headers.get("Link")
        response.headers["Link"] = f"{existing}, {links}" if existing else links
    return response


def _range_headers(result: TemporalResult) -> dict[str, str]:
    if result.truncated is None:
        return {}
    start, end = result.truncated
    last_n = result.request.query.time.last_n
    return {"Content-Range": f"date-time {start}-{end}/{last_n if last_n else '*'}"}


async def retrieve(request: Request) -> Response:
    """GET /temporal/entities/{entityId}."""
    params = _params(request)
    kind = negotiate(request)
    ctx = await request_context(request)
    result = await _service(request).retrieve(ctx.actor, _path(request, "entity_id"), params,
                                              ctx.tm)
    status = 206 if result.truncated is not None else 200
    return entity_response(result.items[0], ctx, kind, status, _range_headers(result))


async def delete(request: Request) -> Response:
    """DELETE /temporal/entities/{entityId}."""
    ctx = await request_context(request)
    await _service(request).delete(ctx.actor, _path(request, "entity_id"))
    return Response(status_code=204)


async def append_attrs(request: Request) -> Response:
    """POST /temporal/entities/{entityId}/attrs."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    await _service(request).append_attrs(ctx.actor, _path(request, "entity_id"), body, ctx.tm)
    return Response(status_code=204)


async def delete_attr(request: Request) -> Response:
    """DELETE /temporal/entities/{entityId}/attrs/{attrId} (datasetId, deleteAll)."""
    ctx = await request_context(request)
    flag = request.query_params.get("deleteAll", "false").lower()
    if flag not in ("true", "false"):
        raise BadRequestData(f"deleteAll must be true or false, got {flag!r:.20}")
    await _service(request).delete_attr(
        ctx.actor, _path(request, "entity_id"), _path(request, "attr_id"), ctx.tm,
        dataset_id=request.query_params.get("datasetId"), delete_all=flag == "true")
    return Response(status_code=204)


async def modify_instance(request: Request) -> Response:
    """PATCH /temporal/entities/{entityId}/attrs/{attrId}/{instanceId}."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    await _service(request).modify_instance(
        ctx.actor, _path(request, "entity_id"), _path(request, "attr_id"),
        _path(request, "instance_id"), body, ctx.tm)
    return Response(status_code=204)


async def delete_instance(request: Request) -> Response:
    """DELETE /temporal/entities/{entityId}/attrs/{attrId}/{instanceId}."""
    ctx = await request_context(request)
    await _service(request).delete_instance(
        ctx.actor, _path(request, "entity_id"), _path(request, "attr_id"),
        _path(request, "instance_id"), ctx.tm)
    return Response(status_code=204)


_ATTR = "/temporal/entities/{entity_id:path}/attrs/{attr_id}"
routes = [
    Route("/temporal/entities", query, methods=["GET"]),
    Route("/temporal/entities", create_or_update, methods=["POST"]),
    Route("/temporal/entityOperations/query", post_query, methods=["POST"]),
    Route(_ATTR + "/{instance_id}", modify_instance, methods=["PATCH"]),
    Route(_ATTR + "/{instance_id}", delete_instance, methods=["DELETE"]),
    Route(_ATTR, delete_attr, methods=["DELETE"]),
    Route("/temporal/entities/{entity_id:path}/attrs", append_attrs, methods=["POST"]),
    Route("/temporal/entities/{entity_id:path}", retrieve, methods=["GET"]),
    Route("/temporal/entities/{entity_id:path}", delete, methods=["DELETE"]),
]
