"""Per-request support as one pure ASGI middleware: request id, security headers, CORS-safe.

The request id comes from `X-Request-Id` when the caller sends a sane one (a load balancer or
a client tracing its calls), else it is generated; it is returned in the response and set in
the logging context for everything logged while serving the request.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from urbis.observability.logs import request_id

_GOOD_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cross-origin-resource-policy", b"same-site"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class RequestSupport:
    """Request id in and out, security headers on every response (HSTS over TLS)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _GOOD_ID.match(value):
                rid = value
                break
        if rid is None:
            rid = uuid.uuid4().hex.encode()
        extra = [(b"x-request-id", rid), *SECURITY_HEADERS]
        if scope.get("scheme") == "https":
            extra.append(HSTS)

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        token = request_id.set(rid.decode())
        try:
            await self.app(scope, receive, add_headers)
        finally:
            request_id.reset(token)
