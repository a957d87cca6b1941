"""Authentication and rate limiting as one pure ASGI middleware, before any handler runs.

The caller's Identity goes into the ASGI scope (`urbis.identity`); handlers turn it into the
Actor of their service call (`urbis.api.ngsild.common.request_context`). Permissions are
checked by the services, not here. With auth off every caller is an admin of every tenant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from urbis.api.responses import problem_response
from urbis.context.actor import ADMIN
from urbis.context.errors import NgsiError, TooManyRequests, Unauthorized
from urbis.security.authn import Authenticator, Identity

SCOPE_KEY = "urbis.identity"
OPEN_PATHS = frozenset({"/health", "/ready"})  # probes: no credentials, nothing disclosed
UNRESTRICTED = Identity("unauthenticated-development", frozenset({ADMIN}))
REALM = 'Bearer realm="urbis"'


def identity_of(scope: Scope) -> Identity:
    """The identity the middleware found (an admin when no middleware ran: tests, tools)."""
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, Identity) else UNRESTRICTED


def challenge(error: NgsiError) -> dict[str, str]:
    """The headers of a 401 (WWW-Authenticate) or 429 (Retry-After) answer."""
    if isinstance(error, Unauthorized):
        if error.extra.get("credentials") is False:
            return {"WWW-Authenticate": REALM}
        return {"WWW-Authenticate": f'{REALM}, error="invalid_token"'}
    if isinstance(error, TooManyRequests):
        return {"Retry-After": str(error.extra.get("retryAfter", 1))}
    return {}


class RateLimiter:
    """A token bucket per principal: `rate` requests a second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int, max_principals: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_principals = max_principals
        self._buckets: dict[str, tuple[float, float]] = {}

    def retry_after(self, principal: str, now: float | None = None) -> int:
        """0 when the request may go, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(principal, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[principal] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self.rate))
        if len(self._buckets) >= self.max_principals and principal not in self._buckets:
            self._buckets.clear()  # bounded memory; forgetting buckets only forgives
        self._buckets[principal] = (tokens - 1.0, now)
        return 0


class Authentication:
    """Identify every request; 401 for bad credentials, 429 over the rate limit."""

    def __init__(self, app: ASGIApp, enabled: bool, limiter: RateLimiter | None = None,
                 render: Callable[[NgsiError, Mapping[str, str]], Response] = problem_response
                 ) -> None:
        self.app = app
        self.enabled = enabled
        self.limiter = limiter
        self.render = render  # the error body (the /iot apps answer in the FIWARE shape)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            identity = await self._identify(scope)
            if self.limiter is not None:
                wait = self.limiter.retry_after(identity.principal if identity.authenticated
                                                else f"anonymous@{_client(scope)}")
                if wait:
                    raise TooManyRequests(f"more than {self.limiter.rate:g} requests a second; "
                                          f"retry in {wait} s", retryAfter=wait)
        except (Unauthorized, TooManyRequests) as err:
            await self.render(err, challenge(err))(scope, receive, send)
            return
        scope[SCOPE_KEY] = identity
        await self.app(scope, receive, send)

    async def _identify(self, scope: Scope) -> Identity:
        if not self.enabled:
            return UNRESTRICTED
        authenticator: Authenticator = scope["app"].state.broker.authenticator
        authorization = api_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
        return await authenticator.identify(authorization, api_key)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
