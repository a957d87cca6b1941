"""HTTP adapter for discovery: /types and /attributes (clause 5.7.5 to 5.7.10)."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.api.ngsild.common import RequestContext, entity_response, negotiate, request_context
from urbis.api.ngsild.federated import hop_of, not_found, warn
from urbis.context.errors import ResourceNotFound
from urbis.storage.base import AttributeInfo, TypeInfo


def _details(request: Request) -> bool:
    return request.query_params.get("details", "false").lower() == "true"


def _type_entry(info: TypeInfo, ctx: RequestContext) -> dict[str, Any]:
    return {
        "id": info.type,
        "type": "EntityType",
        "typeName": ctx.tm.compact_value_iri(info.type),
        "attributeNames": sorted(ctx.tm.compact(a) for a in info.attributes),
    }


def _attribute_entry(info: AttributeInfo, ctx: RequestContext) -> dict[str, Any]:
    return {
        "id": info.name,
        "type": "Attribute",
        "attributeName": ctx.tm.compact(info.name),
        "attributeCount": info.count,
        "attributeTypes": sorted(t for t in info.attribute_types if t),
        "typeNames": sorted(ctx.tm.compact_value_iri(t) for t in info.types),
    }


async def list_types(request: Request) -> Response:
    """GET /types (details=true for EntityType objects)."""
    kind = negotiate(request)
    ctx = await request_context(request)
    answer = await request.app.state.broker.federated_reads.types(ctx.actor, hop_of(request))
    infos = answer.value
    if _details(request):
        return warn(entity_response([_type_entry(i, ctx) for i in infos], ctx, kind),
                    answer.warnings)
    body = {
        "id": f"urn:ngsi-ld:EntityTypeList:{uuid.uuid4()}",
        "type": "EntityTypeList",
        "typeList": [ctx.tm.compact_value_iri(i.type) for i in infos],
    }
    return warn(entity_response(body, ctx, kind), answer.warnings)


async def type_info(request: Request) -> Response:
    """GET /types/{type}."""
    kind = negotiate(request)
    ctx = await request_context(request)
    wanted = ctx.tm.expand(request.path_params["type"])
    answer = await request.app.state.broker.federated_reads.types(ctx.actor, hop_of(request))
    info = next((i for i in answer.value if i.type == wanted), None)
    if info is None:
        return not_found(ResourceNotFound(f"no entity of type {request.path_params['type']}"),
                         answer.warnings)
    body = {
        "id": info.type,
        "type": "EntityTypeInfo",
        "typeName": ctx.tm.compact_value_iri(info.type),
        "entityCount": info.count,
        "attributeDetails": [
            {"id": name, "type": "Attribute", "attributeName": ctx.tm.compact(name),
             "attributeTypes": sorted(t for t in types if t)}
            for name, types in sorted(info.attributes.items())
        ],
    }
    return warn(entity_response(body, ctx, kind), answer.warnings)


async def list_attributes(request: Request) -> Response:
    """GET /attributes (details=true for Attribute objects)."""
    kind = negotiate(request)
    ctx = await request_context(request)
    answer = await request.app.state.broker.federated_reads.attributes(ctx.actor,
                                                                       hop_of(request))
    infos = answer.value
    if _details(request):
        return warn(entity_response([_attribute_entry(i, ctx) for i in infos], ctx, kind),
                    answer.warnings)
    body = {
        "id": f"urn:ngsi-ld:AttributeList:{uuid.uuid4()}",
        "type": "AttributeList",
        "attributeList": [ctx.tm.compact(i.name) for i in infos],
    }
    return warn(entity_response(body, ctx, kind), answer.warnings)


async def attribute_info(request: Request) -> Response:
    """GET /attributes/{attr}."""
    kind = negotiate(request)
    ctx = await request_context(request)
    wanted = ctx.tm.expand(request.path_params["attr"])
    answer = await request.app.state.broker.federated_reads.attributes(ctx.actor,
                                                                       hop_of(request))
    info = next((i for i in answer.value if i.name == wanted), None)
    if info is None:
        return not_found(ResourceNotFound(f"no attribute {request.path_params['attr']}"),
                         answer.warnings)
    return warn(entity_response(_attribute_entry(info, ctx), ctx, kind), answer.warnings)


routes = [
    Route("/types", list_types, methods=["GET"]),
    Route("/types/{type:path}", type_info, methods=["GET"]),
    Route("/attributes", list_attributes, methods=["GET"]),
    Route("/attributes/{attr:path}", attribute_info, methods=["GET"]),
]
