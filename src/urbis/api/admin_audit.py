"""The admin API of the audit log: GET /admin/audit (JSON, or NDJSON export), verification."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from urbis.api.auth import identity_of
from urbis.api.responses import json_response
from urbis.context.actor import Actor
from urbis.context.audit import DECISIONS, AuditFilter, AuditRecord, at_text
from urbis.context.errors import BadRequestData, NgsiError, OperationNotSupported
from urbis.context.temporal import to_micros
from urbis.security.audit import AuditService

NDJSON = "application/x-ndjson"
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_TEXT = 1024
_TEXT = {"tenant": "tenants", "principal": "principal", "operation": "operation",
         "entityId": "entity_id", "decision": "decision"}
_KNOWN = {*_TEXT, "since", "until", "limit", "offset"}


def _service(request: Request) -> AuditService:
    service: AuditService | None = getattr(request.app.state.broker, "audit", None)
    if service is None:
        raise OperationNotSupported("this store keeps no audit log")
    return service


def _actor(request: Request, tenant: str) -> Actor:
    client = request.client.host if request.client else None
    return identity_of(request.scope).actor(tenant, client)


def _int(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequestData(f"{name} must be an integer, got {text!r:.40}") from None
    if not low <= value <= high:
        raise BadRequestData(f"{name} must be between {low} and {high}")
    return value


def parse_filter(params: dict[str, str], export: bool) -> AuditFilter:
    """An AuditFilter from the query parameters; BadRequestData naming what is wrong."""
    unknown = sorted(set(params) - _KNOWN)
    if unknown:
        raise BadRequestData(f"unknown parameter {unknown[0]!r:.60}; the filters are "
                             f"{', '.join(sorted(_KNOWN))}")
    selection = AuditFilter(limit=DEFAULT_PAGE if not export else 2**62)
    for name, member in _TEXT.items():
        value = params.get(name)
        if value is None:
            continue
        if not value or len(value) > MAX_TEXT or "\x00" in value:
            raise BadRequestData(f"{name} must be 1 to {MAX_TEXT} characters")
        setattr(selection, member, [value] if member == "tenants" else value)
    if selection.decision is not None and selection.decision not in DECISIONS:
        raise BadRequestData(f"decision must be one of {', '.join(DECISIONS)}")
    for name in ("since", "until"):
        if name in params:
            setattr(selection, name, at_text(to_micros(params[name], name)))
    if "limit" in params:
        selection.limit = _int(params["limit"], "limit", 1, 2**62 if export else MAX_PAGE)
    if "offset" in params:
        selection.offset = _int(params["offset"], "offset", 0, 2**62)
    return selection


async def list_audit(request: Request) -> Response:
    """GET /admin/audit: records in seq order (JSON page), or all of them as NDJSON."""
    export = NDJSON in request.headers.get("accept", "")
    params = dict(request.query_params)
    selection = parse_filter(params, export)
    actor = _actor(request, params.get("tenant", ""))
    service = _service(request)
    if not export:
        page = await service.query(actor, selection)
        return json_response([r.to_json() for r in page])
    records = await service.export(actor, selection)
    return StreamingResponse(_lines(records), media_type=NDJSON,
                             headers={"Cache-Control": "no-store"})


async def _lines(records: AsyncIterator[AuditRecord]) -> AsyncIterator[bytes]:
    try:
        async for record in records:
            yield orjson.dumps(record.to_json()) + b"\n"
    except NgsiError as err:  # the status is sent already: end with the problem as a line
        yield orjson.dumps({"error": err.to_problem()}) + b"\n"


async def verify_audit(request: Request) -> Response:
    """GET /admin/audit/verify: walk the hash chain; 200 with the outcome (ok or not)."""
    result = await _service(request).verify(_actor(request, ""))
    return json_response(result.to_json())


routes = [
    Route("/audit", list_audit, methods=["GET"]),
    Route("/audit/verify", verify_audit, methods=["GET"]),
]
