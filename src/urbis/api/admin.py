"""The admin API: /admin/apikeys (create: the key is in the answer, once; list; revoke);
/admin/audit is in urbis.api.admin_audit."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from urbis.api import admin_audit, admin_feeds
from urbis.api.auth import identity_of
from urbis.api.responses import json_response
from urbis.context.actor import Actor
from urbis.context.credentials import ApiKey
from urbis.context.errors import BadRequestData, OperationNotSupported
from urbis.security.apikeys import ApiKeyService, KeyRequest


def _service(request: Request) -> ApiKeyService:
    service: ApiKeyService | None = request.app.state.broker.apikeys
    if service is None:
        raise OperationNotSupported("this store keeps no API keys")
    return service


def _actor(request: Request) -> Actor:
    client = request.client.host if request.client else None
    return identity_of(request.scope).actor("", client)


def describe(key: ApiKey) -> dict[str, Any]:
    """A key as the API shows it: never its hash."""
    out: dict[str, Any] = {"id": key.id, "name": key.name, "roles": key.roles,
                           "createdAt": key.created_at}
    for name in ("tenants", "types", "entities", "department"):
        if getattr(key, name) is not None:
            out[name] = getattr(key, name)
    out["status"] = "active" if key.active else "revoked"
    if key.revoked_at:
        out["revokedAt"] = key.revoked_at
    return out


async def create_key(request: Request) -> Response:
    """POST /admin/apikeys: 201 with the key (shown this once) and its description."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequestData(f"malformed JSON: {exc}") from None
    key, secret = await _service(request).create(_actor(request), KeyRequest.parse(body))
    return json_response({**describe(key), "key": secret}, 201,
                         {"Location": f"/admin/apikeys/{key.id}", "Cache-Control": "no-store"})


async def list_keys(request: Request) -> Response:
    """GET /admin/apikeys: every key the admin may see."""
    keys = await _service(request).list(_actor(request))
    return json_response([describe(k) for k in keys])


async def revoke_key(request: Request) -> Response:
    """DELETE /admin/apikeys/{id}: 204; the key stops working on every worker."""
    await _service(request).revoke(_actor(request), request.path_params["key_id"])
    return Response(status_code=204)


routes = [
    *admin_audit.routes,
    *admin_feeds.routes,
    Route("/apikeys", create_key, methods=["POST"]),
    Route("/apikeys", list_keys, methods=["GET"]),
    Route("/apikeys/{key_id}", revoke_key, methods=["DELETE"]),
]
