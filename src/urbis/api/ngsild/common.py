"""Request plumbing shared by the NGSI-LD handlers: tenant, @context, bodies, negotiation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from urbis.api.auth import identity_of
from urbis.api.responses import GEO_JSON, JSON, JSON_LD, json_response
from urbis.context.actor import DEFAULT_TENANT, Actor
from urbis.context.errors import (
    BadRequestData,
    InvalidRequest,
    NotAcceptable,
    UnsupportedMediaType,
)
from urbis.context.jsonld import CORE_CONTEXT_URL, TermMap

JSONLD_REL = "http://www.w3.org/ns/json-ld#context"
_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_TENANT = re.compile(r"^[A-Za-z0-9_\-.:]{1,64}$")
_MERGE_PATCH = "application/merge-patch+json"


@dataclass(slots=True)
class RequestContext:
    """What a handler needs from a request: the caller, the @context and its term map."""

    actor: Actor
    raw_context: Any
    tm: TermMap
    link_url: str | None


def tenant_of(request: Request) -> str:
    """The tenant named by NGSILD-Tenant (the default tenant when absent)."""
    value = request.headers.get("ngsild-tenant")
    if value is None or value == "":
        return DEFAULT_TENANT
    if not _TENANT.match(value):
        raise BadRequestData(f"invalid NGSILD-Tenant {value!r:.80}")
    return value


def link_context(request: Request) -> str | None:
    """The @context URL of a JSON-LD Link header, if any."""
    header = request.headers.get("link")
    if not header:
        return None
    for match in _LINK.finditer(header):
        params = match.group(2)
        if JSONLD_REL in params:
            return match.group(1).strip()
    return None


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json(request: Request, *, merge_patch: bool = False) -> tuple[Any, Any]:
    """(body, inline @context) of a JSON or JSON-LD request; 415/400 on the wrong kind."""
    kind = media_type(request)
    allowed = {JSON, JSON_LD} | ({_MERGE_PATCH} if merge_patch else set())
    if kind not in allowed:
        raise UnsupportedMediaType(f"Content-Type {kind or '(none)'} is not supported; "
                                   f"use {' or '.join(sorted(allowed))}")
    raw = await request.body()
    if not raw:
        raise InvalidRequest("the request body is empty")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise InvalidRequest(f"the request body is not valid JSON: {err}") from None
    inline = _inline_context(body)
    if kind == JSON_LD and inline is None:
        raise BadRequestData("an application/ld+json body must carry an @context")
    if kind != JSON_LD and inline is not None:
        raise BadRequestData("an @context in the body needs Content-Type application/ld+json")
    if kind == JSON_LD and link_context(request) is not None:
        raise BadRequestData("with application/ld+json the @context goes in the body, "
                             "not in a Link header")
    return body, inline


def _inline_context(body: Any) -> Any:
    if isinstance(body, dict):
        return body.get("@context")
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return body[0].get("@context")
    return None


async def request_context(request: Request, inline: Any = None) -> RequestContext:
    """Resolve the caller and the @context (inline wins over a Link header)."""
    link = link_context(request)
    raw = inline if inline is not None else link
    tm = await request.app.state.broker.contexts.term_map(raw)
    client = request.client.host if request.client else None
    actor = identity_of(request.scope).actor(tenant_of(request), client)
    return RequestContext(actor, raw, tm, link)


def negotiate(request: Request, *, geo: bool = False) -> str:
    """The response media type from Accept; NotAcceptable (406) if none can be produced."""
    accept = request.headers.get("accept")
    if not accept:
        return JSON
    offered = [JSON, JSON_LD, GEO_JSON] if geo else [JSON, JSON_LD]
    best, best_q = None, 0.0
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        q = _quality(params)
        for candidate in offered:
            if q > best_q and _matches(kind.lower(), candidate):
                best, best_q = candidate, q
                break
    if best is None:
        raise NotAcceptable(f"cannot produce any of: {accept}; offered: {', '.join(offered)}")
    return best


def _quality(params: list[str]) -> float:
    for p in params:
        if p.startswith("q="):
            try:
                return float(p[2:])
            except ValueError:
                return 0.0
    return 1.0


def _matches(pattern: str, candidate: str) -> bool:
    if pattern in ("*/*", candidate):
        return True
    return pattern.endswith("/*") and candidate.startswith(pattern[:-1])


def response_context(ctx: RequestContext) -> Any:
    """The @context to return: the caller's own, else the core context."""
    if ctx.raw_context is None:
        return CORE_CONTEXT_URL
    return ctx.raw_context


def link_header(url: str) -> str:
    """A JSON-LD context Link header value."""
    return f'<{url}>; rel="{JSONLD_REL}"; type="application/ld+json"'


def entity_response(body: Any, ctx: RequestContext, kind: str, status: int = 200,
                    headers: dict[str, str] | None = None) -> Response:
    """Entities with their @context: a Link header (JSON) or inline (JSON-LD)."""
    headers = dict(headers or {})
    context = response_context(ctx)
    if kind == JSON_LD:
        if isinstance(body, list):
            body = [{**item, "@context": context} for item in body]
        else:
            body = {**body, "@context": context}
    elif kind == JSON and isinstance(context, str):
        headers["Link"] = link_header(context)
    elif kind == JSON:
        headers["Link"] = link_header(ctx.link_url or CORE_CONTEXT_URL)
    return json_response(body, status, headers, kind)
