"""HTTP adapter for /entityOperations (batch operations and POST query)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.api.ngsild.common import negotiate, read_json, request_context
from urbis.api.ngsild.entities import run_query
from urbis.api.ngsild.federated import hop_of
from urbis.api.responses import json_response
from urbis.broker.entities import BatchResult
from urbis.context.errors import BadRequestData


def _result(result: BatchResult, created_status: bool) -> Response:
    if not result.errors:
        if created_status and result.created:
            return json_response(result.created, 201)
        return Response(status_code=204)
    body = {
        "success": result.success,
        "errors": [{"entityId": eid, "error": err.to_problem()} for eid, err in result.errors],
    }
    return json_response(body, 207)


def _options(request: Request) -> set[str]:
    return set(request.query_params.get("options", "").split(","))


async def batch_create(request: Request) -> Response:
    """POST /entityOperations/create."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    result = await request.app.state.broker.federated_batch.create(ctx.actor, body, ctx.tm,
                                                                   hop_of(request))
    if not result.errors:
        return json_response(result.success, 201)
    return _result(result, True)


async def batch_upsert(request: Request) -> Response:
    """POST /entityOperations/upsert (options=replace, the default, or update)."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    result = await request.app.state.broker.federated_batch.upsert(
        ctx.actor, body, ctx.tm, "update" in _options(request), hop_of(request))
    return _result(result, True)


async def batch_update(request: Request) -> Response:
    """POST /entityOperations/update (options=noOverwrite)."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    result = await request.app.state.broker.federated_batch.update(
        ctx.actor, body, ctx.tm, "noOverwrite" not in _options(request), hop_of(request))
    return _result(result, False)


async def batch_merge(request: Request) -> Response:
    """POST /entityOperations/merge."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    result = await request.app.state.broker.federated_batch.merge(ctx.actor, body, ctx.tm,
                                                                  hop_of(request))
    return _result(result, False)


async def batch_delete(request: Request) -> Response:
    """POST /entityOperations/delete."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    result = await request.app.state.broker.federated_batch.delete(ctx.actor, body,
                                                                   hop_of(request))
    return _result(result, False)


async def batch_query(request: Request) -> Response:
    """POST /entityOperations/query: a Query object in the body."""
    kind = negotiate(request, geo=True)
    body, inline = await read_json(request)
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object ({"type": "Query", ...})')
    ctx = await request_context(request, inline)
    params = _query_params(body, request)
    return await run_query(request, params, ctx, kind)


def _query_params(body: dict[str, Any], request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {k: v for k, v in request.query_params.items()}
    entities = body.get("entities")
    if entities is not None:
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            raise BadRequestData("entities must be an array of EntitySelector objects")
        ids = [e["id"] for e in entities if "id" in e]
        types = [e["type"] for e in entities if "type" in e]
        patterns = [e["idPattern"] for e in entities if "idPattern" in e]
        if ids:
            params["id"] = ids
        if types:
            params["type"] = types
        if patterns:
            params["idPattern"] = patterns[0]
    for key in ("attrs", "q", "geoQ", "scopeQ", "lang", "pick", "omit", "orderBy", "local"):
        if key in body:
            params[key] = body[key]
    return params


routes = [
    Route("/entityOperations/create", batch_create, methods=["POST"]),
    Route("/entityOperations/upsert", batch_upsert, methods=["POST"]),
    Route("/entityOperations/update", batch_update, methods=["POST"]),
    Route("/entityOperations/merge", batch_merge, methods=["POST"]),
    Route("/entityOperations/delete", batch_delete, methods=["POST"]),
    Route("/entityOperations/query", batch_query, methods=["POST"]),
]
