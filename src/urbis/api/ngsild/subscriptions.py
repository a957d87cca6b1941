"""HTTP adapter for /subscriptions (ETSI GS CIM 009 V1.8.1 clauses 5.8 and 6.10 / 6.11)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.api.ngsild.common import entity_response, negotiate, read_json, request_context
from urbis.api.ngsild.entities import page_links
from urbis.broker.queries import parse_options
from urbis.broker.subscriptions import page_params
from urbis.context.errors import BadRequestData
from urbis.context.model import now_iso
from urbis.context.subscription import render

PATH = "/subscriptions"


def _service(request: Request) -> Any:
    return request.app.state.broker.subscriptions


def _params(request: Request) -> dict[str, Any]:
    for key in request.query_params:
        if len(request.query_params.getlist(key)) > 1:
            raise BadRequestData(f"query parameter {key} is given more than once")
    return dict(request.query_params)


def _subscription_id(request: Request) -> str:
    subscription_id: str = request.path_params["subscription_id"]
    if not subscription_id:  # /subscriptions/ names no subscription: the method is wrong
        raise HTTPException(status_code=405)
    return subscription_id


def _sys_attrs(params: dict[str, Any]) -> bool:
    _, sys_attrs, _ = parse_options(params.get("options"), None)
    return sys_attrs


async def create_subscription(request: Request) -> Response:
    """POST /subscriptions: 201 with the new subscription's Location."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    sub_id = await _service(request).create(ctx.actor, body, ctx.tm, ctx.raw_context)
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1{PATH}/{sub_id}"})


async def query_subscriptions(request: Request) -> Response:
    """GET /subscriptions: a page, NGSILD-Results-Count with count=true, Link to others."""
    params = _params(request)
    kind = negotiate(request)
    sys_attrs = _sys_attrs(params)
    ctx = await request_context(request)
    service = _service(request)
    page = await service.query(ctx.actor, params)
    now = now_iso()
    items = [render(s, ctx.tm, now, sys_attrs=sys_attrs) for s in page.subscriptions]
    headers: dict[str, str] = {}
    if page.count is not None:
        headers["NGSILD-Results-Count"] = str(page.count)
    limit, offset, _ = page_params(params, service.paging)
    links = page_links(request, params, limit, offset, len(items), page.count)
    response = entity_response(items, ctx, kind, headers=headers)
    if links:
        current = response.headers.get("Link")
        response.headers["Link"] = f"{current}, {links}" if current else links
    return response


async def retrieve_subscription(request: Request) -> Response:
    """GET /subscriptions/{id}."""
    params = _params(request)
    kind = negotiate(request)
    sys_attrs = _sys_attrs(params)
    ctx = await request_context(request)
    sub = await _service(request).get(ctx.actor, _subscription_id(request))
    return entity_response(render(sub, ctx.tm, now_iso(), sys_attrs=sys_attrs), ctx, kind)


async def update_subscription(request: Request) -> Response:
    """PATCH /subscriptions/{id}: 204."""
    subscription_id = _subscription_id(request)
    body, inline = await read_json(request, merge_patch=True)
    ctx = await request_context(request, inline)
    await _service(request).update(ctx.actor, subscription_id, body, ctx.tm)
    return Response(status_code=204)


async def delete_subscription(request: Request) -> Response:
    """DELETE /subscriptions/{id}: 204."""
    subscription_id = _subscription_id(request)
    ctx = await request_context(request)
    await _service(request).delete(ctx.actor, subscription_id)
    return Response(status_code=204)


routes = [
    Route(PATH, query_subscriptions, methods=["GET"]),
    Route(PATH, create_subscription, methods=["POST"]),
    Route(PATH + "/", query_subscriptions, methods=["GET"]),
    Route(PATH + "/", create_subscription, methods=["POST"]),
    Route(PATH + "/{subscription_id:path}", retrieve_subscription, methods=["GET"]),
    Route(PATH + "/{subscription_id:path}", update_subscription, methods=["PATCH"]),
    Route(PATH + "/{subscription_id:path}", delete_subscription, methods=["DELETE"]),
]
