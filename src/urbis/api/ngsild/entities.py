"""HTTP adapter for /entities (clause 5.6 / 5.7 of ETSI GS CIM 009)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.api.ngsild.common import (
    RequestContext,
    entity_response,
    negotiate,
    read_json,
    request_context,
    response_context,
)
from urbis.api.ngsild.federated import hop_of, not_found, warn, written_response
from urbis.api.responses import GEO_JSON, json_response
from urbis.broker.federation import Federated
from urbis.broker.queries import entity_query, render_options
from urbis.context.errors import BadRequestData, ResourceNotFound
from urbis.context.geojson import to_feature, to_feature_collection
from urbis.context.operations import AttrReport
from urbis.context.render import render


def _broker(request: Request) -> Any:
    return request.app.state.broker


def _params(request: Request) -> dict[str, Any]:
    params = dict(request.query_params)
    for key in request.query_params:
        if len(request.query_params.getlist(key)) > 1:
            raise BadRequestData(f"query parameter {key} is given more than once")
    return params


async def create_entity(request: Request) -> Response:
    """POST /entities."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    written = await _broker(request).federated_writes.create(ctx.actor, body, ctx.tm,
                                                             hop_of(request))

    def created(entity_id: Any) -> Response:
        entity_id = entity_id or body.get("id")
        return Response(status_code=201,
                        headers={"Location": f"/ngsi-ld/v1/entities/{entity_id}"})

    return written_response(written, ctx, created)


async def query_entities(request: Request) -> Response:
    """GET /entities."""
    params = _params(request)
    kind = negotiate(request, geo=True)
    ctx = await request_context(request)
    return await run_query(request, params, ctx, kind)


async def run_query(request: Request, params: dict[str, Any], ctx: RequestContext, kind: str
                    ) -> Response:
    """Run a query and answer with a page of entities, count and Link pagination headers."""
    broker = _broker(request)
    query = entity_query(params, ctx.tm, broker.paging)
    opts = render_options(params, ctx.tm)
    hop = hop_of(request, params)
    if broker.federation.idle(ctx.actor.tenant, hop):  # the hot path: nothing to ask
        answer = Federated(await broker.entities.query(ctx.actor, query))
    else:
        caller = (ctx.link_url, ctx.tm) if ctx.link_url else None
        answer = await broker.federated_reads.query(ctx.actor, query, hop, caller)
    result = answer.value
    items = [render(e, ctx.tm, opts) for e in result.entities]
    headers: dict[str, str] = {}
    if result.count is not None:
        headers["NGSILD-Results-Count"] = str(result.count)
    links = page_links(request, params, query.limit, query.offset, len(items), result.count)
    if links and request.method == "GET":
        headers["Link"] = links
    if kind == GEO_JSON:
        body = to_feature_collection(items, params.get("geometryProperty", "location"),
                                     response_context(ctx))
        return warn(json_response(body, 200, headers, GEO_JSON), answer.warnings)
    response = entity_response(items, ctx, kind, headers=headers)
    if links and request.method == "GET" and "Link" in response.headers:
        response.headers["Link"] = response.headers["Link"] + ", " + links
    return warn(response, answer.warnings)


def page_links(request: Request, params: dict[str, Any], limit: int, offset: int,
               returned: int, count: int | None) -> str:
    """`Link` header value with the prev / next pages of a paginated list (or "")."""
    if limit <= 0:
        return ""
    links = []
    base = request.url.path

    def link(new_offset: int, rel: str) -> str:
        query = urlencode({**params, "offset": new_offset, "limit": limit}, quote_via=quote)
        return f'<{base}?{query}>; rel="{rel}"; type="application/ld+json"'

    if offset > 0:
        links.append(link(max(0, offset - limit), "prev"))
    has_more = (count is not None and offset + returned < count) or (
        count is None and returned == limit)
    if has_more:
        links.append(link(offset + limit, "next"))
    return ", ".join(links)


async def retrieve_entity(request: Request) -> Response:
    """GET /entities/{entityId}."""
    params = _params(request)
    kind = negotiate(request, geo=True)
    ctx = await request_context(request)
    entity_id = request.path_params["entity_id"]
    opts = render_options(params, ctx.tm)
    broker, hop = _broker(request), hop_of(request, params)
    if broker.federation.idle(ctx.actor.tenant, hop):  # the hot path: nothing to ask
        answer = Federated(await broker.entities.get(ctx.actor, entity_id))
    else:
        answer = await broker.federated_reads.retrieve(ctx.actor, entity_id, opts.attrs, hop)
    if answer.value is None:
        return not_found(ResourceNotFound(f"entity {entity_id} not found"), answer.warnings)
    body = render(answer.value, ctx.tm, opts)
    if kind == GEO_JSON:
        feature = to_feature(body, params.get("geometryProperty", "location"),
                             key_values="keyValues" in (params.get("options") or "") or
                             params.get("format") in ("keyValues", "simplified"))
        feature["@context"] = response_context(ctx)
        return warn(json_response(feature, 200, None, GEO_JSON), answer.warnings)
    return warn(entity_response(body, ctx, kind), answer.warnings)


async def replace_entity(request: Request) -> Response:
    """PUT /entities/{entityId}."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    written = await _broker(request).federated_writes.replace(
        ctx.actor, request.path_params["entity_id"], body, ctx.tm, hop_of(request))
    return written_response(written, ctx, _no_content)


async def merge_entity(request: Request) -> Response:
    """PATCH /entities/{entityId}."""
    body, inline = await read_json(request, merge_patch=True)
    ctx = await request_context(request, inline)
    written = await _broker(request).federated_writes.merge(
        ctx.actor, request.path_params["entity_id"], body, ctx.tm, hop_of(request))
    return written_response(written, ctx, _no_content)


async def delete_entity(request: Request) -> Response:
    """DELETE /entities/{entityId}."""
    ctx = await request_context(request)
    written = await _broker(request).federated_writes.delete(
        ctx.actor, request.path_params["entity_id"], hop_of(request))
    return written_response(written, ctx, _no_content)


def _no_content(_: Any = None) -> Response:
    return Response(status_code=204)


async def purge_entities(request: Request) -> Response:
    """DELETE /entities?type=T."""
    type_name = request.query_params.get("type")
    if not type_name:
        raise BadRequestData("DELETE /entities needs a type parameter")
    ctx = await request_context(request)
    await _broker(request).entities.delete_by_type(ctx.actor, type_name, ctx.tm)
    return Response(status_code=204)


def report_response(report: AttrReport, ctx: RequestContext) -> Response:
    """204 when every attribute was changed, else 207 with updated / notUpdated."""
    if not report.not_updated:
        return Response(status_code=204)
    body = {
        "updated": [ctx.tm.compact(a) for a in report.updated],
        "notUpdated": [{"attributeName": ctx.tm.compact(a), "reason": r}
                       for a, r in report.not_updated],
    }
    return json_response(body, 207)


async def append_attrs(request: Request) -> Response:
    """POST /entities/{entityId}/attrs."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    options = request.query_params.get("options", "")
    written = await _broker(request).federated_writes.append_attrs(
        ctx.actor, request.path_params["entity_id"], body, ctx.tm,
        "noOverwrite" not in options.split(","), hop_of(request))
    return written_response(written, ctx, lambda report: _report(report, ctx))


async def update_attrs(request: Request) -> Response:
    """PATCH /entities/{entityId}/attrs."""
    body, inline = await read_json(request)
    ctx = await request_context(request, inline)
    written = await _broker(request).federated_writes.update_attrs(
        ctx.actor, request.path_params["entity_id"], body, ctx.tm, hop_of(request))
    return written_response(written, ctx, lambda report: _report(report, ctx))


def _report(report: AttrReport | None, ctx: RequestContext) -> Response:
    return report_response(report, ctx) if report is not None else Response(status_code=204)


async def patch_attr(request: Request) -> Response:
    """PATCH /entities/{entityId}/attrs/{attrId}."""
    return await _attr_write(request, replace=False)


async def replace_attr(request: Request) -> Response:
    """PUT /entities/{entityId}/attrs/{attrId}."""
    return await _attr_write(request, replace=True)


async def _attr_write(request: Request, replace: bool) -> Response:
    body, inline = await read_json(request, merge_patch=not replace)
    ctx = await request_context(request, inline)
    broker, hop = _broker(request), hop_of(request)
    entity_id, attr = request.path_params["entity_id"], request.path_params["attr_id"]
    if broker.federation.idle(ctx.actor.tenant, hop):  # the hot path: nothing to forward
        await broker.entities.patch_attr(ctx.actor, entity_id, attr, body, ctx.tm,
                                         replace=replace)
        return Response(status_code=204)
    written = await broker.federated_writes.patch_attr(ctx.actor, entity_id, attr, body,
                                                       ctx.tm, hop, replace=replace)
    return written_response(written, ctx, _no_content)


async def delete_attr(request: Request) -> Response:
    """DELETE /entities/{entityId}/attrs/{attrId}."""
    ctx = await request_context(request)
    delete_all = request.query_params.get("deleteAll", "false").lower() == "true"
    written = await _broker(request).federated_writes.delete_attr(
        ctx.actor, request.path_params["entity_id"], request.path_params["attr_id"], ctx.tm,
        hop_of(request), dataset_id=request.query_params.get("datasetId"),
        delete_all=delete_all)
    return written_response(written, ctx, _no_content)


routes = [
    Route("/entities", query_entities, methods=["GET"]),
    Route("/entities", create_entity, methods=["POST"]),
    Route("/entities", purge_entities, methods=["DELETE"]),
    Route("/entities/{entity_id:path}/attrs/{attr_id}", patch_attr, methods=["PATCH"]),
    Route("/entities/{entity_id:path}/attrs/{attr_id}", replace_attr, methods=["PUT"]),
    Route("/entities/{entity_id:path}/attrs/{attr_id}", delete_attr, methods=["DELETE"]),
    Route("/entities/{entity_id:path}/attrs", append_attrs, methods=["POST"]),
    Route("/entities/{entity_id:path}/attrs", update_attrs, methods=["PATCH"]),
    Route("/entities/{entity_id:path}", retrieve_entity, methods=["GET"]),
    Route("/entities/{entity_id:path}", replace_entity, methods=["PUT"]),
    Route("/entities/{entity_id:path}", merge_entity, methods=["PATCH"]),
    Route("/entities/{entity_id:path}", delete_entity, methods=["DELETE"]),
]
