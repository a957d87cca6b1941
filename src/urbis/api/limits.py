"""Request body size limit (413) as a pure ASGI middleware: cheap on the hot path."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from urbis.api.responses import problem_response
from urbis.context.errors import NgsiError


class PayloadTooLarge(NgsiError):
    """The request body exceeds the configured limit (HTTP 413)."""

    problem, status, title = "PayloadTooLarge", 413, "Payload too large"


class BodyLimit:
    """Refuse bodies larger than `max_bytes` (by Content-Length, or while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int,
                 render: Callable[[NgsiError], Response] = problem_response) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render = render  # the error body (the /iot apps answer in the FIWARE shape)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise PayloadTooLarge(f"the request body exceeds {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"the request body exceeds {self.max_bytes} bytes")
        await self.render(error)(scope, receive, send)
