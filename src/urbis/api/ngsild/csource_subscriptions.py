"""HTTP adapter for /csourceSubscriptions (ETSI GS CIM 009 V1.8.1 clauses 5.11, 6.12, 6.13)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.api.ngsild.common import entity_response, negotiate, read_json, request_context
from urbis.api.ngsild.registrations import list_response, path_id, query_params, sys_attrs
from urbis.broker.subscriptions import page_params
from urbis.context.errors import OperationNotSupported
from urbis.context.jsonld import TermMap
from urbis.context.model import now_iso
from urbis.context.subscription import Subscription, render

PATH = "/csourceSubscriptions"


def _service(request: Request) -> Any:
    service = request.app.state.broker.csource_subscriptions
    if service is None:
        raise OperationNotSupported("this store keeps no context source registrations")
    return service


def render_csource(sub: Subscription, tm: TermMap, now: str, *, with_sys: bool = False
                   ) -> dict[str, Any]:
    """A subscription to registrations (notificationTrigger only when it was given)."""
    out = render(sub, tm, now, sys_attrs=with_sys)
    if sub.triggers is None:
        out.pop("notificationTrigger", None)
    return out


async def create_csource_subscription(request: Request) -> Response:
    """POST /csourceSubscriptions: 201 with the new subscription's Location."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    sub_id = await _service(request).create(ctx.actor, body, ctx.tm, ctx.raw_context)
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1{PATH}/{sub_id}"})


async def query_csource_subscriptions(request: Request) -> Response:
    """GET /csourceSubscriptions: a page (limit, offset, count)."""
    params = query_params(request)
    kind = negotiate(request)
    with_sys = sys_attrs(params)
    ctx = await request_context(request)
    service = _service(request)
    page = await service.query(ctx.actor, params)
    now = now_iso()
    items = [render_csource(s, ctx.tm, now, with_sys=with_sys) for s in page.subscriptions]
    limit, offset, _ = page_params(params, service.paging)
    return list_response(request, params, items, page.count, limit, offset, ctx, kind)


async def retrieve_csource_subscription(request: Request) -> Response:
    """GET /csourceSubscriptions/{id}."""
    params = query_params(request)
    kind = negotiate(request)
    with_sys = sys_attrs(params)
    ctx = await request_context(request)
    sub = await _service(request).get(ctx.actor, path_id(request, "subscription_id"))
    return entity_response(render_csource(sub, ctx.tm, now_iso(), with_sys=with_sys), ctx,
                           kind)


async def update_csource_subscription(request: Request) -> Response:
    """PATCH /csourceSubscriptions/{id}: 204."""
    subscription_id = path_id(request, "subscription_id")
    body, inline = await read_json(request, merge_patch=True)
    ctx = await request_context(request, inline)
    await _service(request).update(ctx.actor, subscription_id, body, ctx.tm)
    return Response(status_code=204)


async def delete_csource_subscription(request: Request) -> Response:
    """DELETE /csourceSubscriptions/{id}: 204."""
    subscription_id = path_id(request, "subscription_id")
    ctx = await request_context(request)
    await _service(request).delete(ctx.actor, subscription_id)
    return Response(status_code=204)


routes = [
    Route(PATH, query_csource_subscriptions, methods=["GET"]),
    Route(PATH, create_csource_subscription, methods=["POST"]),
    Route(PATH + "/", query_csource_subscriptions, methods=["GET"]),
    Route(PATH + "/", create_csource_subscription, methods=["POST"]),
    Route(PATH + "/{subscription_id:path}", retrieve_csource_subscription, methods=["GET"]),
    Route(PATH + "/{subscription_id:path}", update_csource_subscription, methods=["PATCH"]),
    Route(PATH + "/{subscription_id:path}", delete_csource_subscription, methods=["DELETE"]),
]
