"""HTTP adapter for /csourceRegistrations (ETSI GS CIM 009 V1.8.1 clauses 5.9, 5.10, 6.8, 6.9)."""

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
from urbis.context.errors import BadRequestData, OperationNotSupported
from urbis.context.registration import render

PATH = "/csourceRegistrations"


def _service(request: Request) -> Any:
    service = request.app.state.broker.registrations
    if service is None:
        raise OperationNotSupported("this store keeps no context source registrations")
    return service


def query_params(request: Request) -> dict[str, Any]:
    """The query parameters, each at most once."""
    for key in request.query_params:
        if len(request.query_params.getlist(key)) > 1:
            raise BadRequestData(f"query parameter {key} is given more than once")
    return dict(request.query_params)


def path_id(request: Request, name: str) -> str:
    """The id in the path; /csourceRegistrations/ names none: the method is wrong there."""
    value: str = request.path_params[name]
    if not value:
        raise HTTPException(status_code=405)
    return value


def sys_attrs(params: dict[str, Any]) -> bool:
    """Whether options asks for createdAt / modifiedAt."""
    _, wanted, _ = parse_options(params.get("options"), None)
    return wanted


async def create_registration(request: Request) -> Response:
    """POST /csourceRegistrations: 201 with the new registration's Location."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    reg_id = await _service(request).create(ctx.actor, body, ctx.tm, ctx.raw_context)
    return Response(status_code=201, headers={"Location": f"/ngsi-ld/v1{PATH}/{reg_id}"})


async def query_registrations(request: Request) -> Response:
    """GET /csourceRegistrations: a page, NGSILD-Results-Count with count=true, Link to others."""
    params = query_params(request)
    kind = negotiate(request)
    with_sys = sys_attrs(params)
    ctx = await request_context(request)
    service = _service(request)
    page = await service.query(ctx.actor, params, ctx.tm)
    items = [render(r, ctx.tm, sys_attrs=with_sys) for r in page.registrations]
    limit, offset, _ = page_params(params, service.paging)
    return list_response(request, params, items, page.count, limit, offset, ctx, kind)


def list_response(request: Request, params: dict[str, Any], items: list[Any],
                  count: int | None, limit: int, offset: int, ctx: Any, kind: str) -> Response:
    """A page of a list: the count header and the Links to the pages around it."""
    headers: dict[str, str] = {}
    if count is not None:
        headers["NGSILD-Results-Count"] = str(count)
    links = page_links(request, params, limit, offset, len(items), count)
    response = entity_response(items, ctx, kind, headers=headers)
    if links:
        current = response.headers.get("Link")
        response.headers["Link"] = f"{current}, {links}" if current else links
    return response


async def retrieve_registration(request: Request) -> Response:
    """GET /csourceRegistrations/{id}."""
    params = query_params(request)
    kind = negotiate(request)
    with_sys = sys_attrs(params)
    ctx = await request_context(request)
    reg = await _service(request).get(ctx.actor, path_id(request, "registration_id"))
    return entity_response(render(reg, ctx.tm, sys_attrs=with_sys), ctx, kind)


async def update_registration(request: Request) -> Response:
    """PATCH /csourceRegistrations/{id}: 204."""
    registration_id = path_id(request, "registration_id")
    body, inline = await read_json(request, merge_patch=True)
    ctx = await request_context(request, inline)
    await _service(request).update(ctx.actor, registration_id, body, ctx.tm)
    return Response(status_code=204)


async def delete_registration(request: Request) -> Response:
    """DELETE /csourceRegistrations/{id}: 204."""
    registration_id = path_id(request, "registration_id")
    ctx = await request_context(request)
    await _service(request).delete(ctx.actor, registration_id)
    return Response(status_code=204)


routes = [
    Route(PATH, query_registrations, methods=["GET"]),
    Route(PATH, create_registration, methods=["POST"]),
    Route(PATH + "/", query_registrations, methods=["GET"]),
    Route(PATH + "/", create_registration, methods=["POST"]),
    Route(PATH + "/{registration_id:path}", retrieve_registration, methods=["GET"]),
    Route(PATH + "/{registration_id:path}", update_registration, methods=["PATCH"]),
    Route(PATH + "/{registration_id:path}", delete_registration, methods=["DELETE"]),
]
