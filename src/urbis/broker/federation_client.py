"""How distributed operations reach a context source: a small Protocol and its adapters.

A `SourceClient` sends one NGSI-LD request and returns the answer (status, headers, body),
or raises `SourceUnreachable`. `HttpSourceClient` speaks HTTP with one shared
aiohttp session (connections kept alive per source); `SourceClients` picks the client of an
endpoint by URL prefix, so an in-process source (an IoT agent of this process, say) can be
registered under its own prefix and answer without the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import aiohttp
from yarl import URL

MAX_ANSWER_BYTES = 64_000_000  # a source answering more than this is treated as failing


class SourceUnreachable(Exception):
    """The source could not be asked (refused, reset, timed out, answer too large)."""


@dataclass(frozen=True, slots=True)
class SourceRequest:
    """One request to a source: method, absolute URL, query parameters, headers, body."""

    method: str
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class SourceAnswer:
    """What a source answered; header names lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@runtime_checkable
class SourceClient(Protocol):
    """Sends requests to context sources."""

    async def send(self, request: SourceRequest, timeout: float) -> SourceAnswer:
        """The answer within `timeout` seconds, else SourceUnreachable."""

    async def close(self) -> None:
        """Release connections."""


class HttpSourceClient:
    """Context sources over HTTP(S), through one aiohttp session (keep-alive per source)."""

    def __init__(self, max_connections: int = 100) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made in the running loop

    async def send(self, request: SourceRequest, timeout: float) -> SourceAnswer:
        """One HTTP exchange; the body is read up to MAX_ANSWER_BYTES."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                skip_auto_headers=("User-Agent",), headers={"User-Agent": "urbis"})
        url = URL(request.url, encoded=True)  # the path is percent-encoded already
        try:
            async with self._session.request(
                    request.method, url, params=dict(request.params) or None,
                    headers=dict(request.headers), data=request.body, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                body = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    body.extend(chunk)
                    if len(body) > MAX_ANSWER_BYTES:
                        raise SourceUnreachable(f"answer larger than {MAX_ANSWER_BYTES} bytes")
                headers = {k.lower(): v for k, v in response.headers.items()}
                return SourceAnswer(response.status, headers, bytes(body))
        except TimeoutError:
            raise SourceUnreachable(f"no answer within {timeout:g} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise SourceUnreachable(f"{type(exc).__name__}: {exc}"[:200]) from None

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class SourceClients:
    """The client of each endpoint: the first registered prefix it starts with, else HTTP."""

    def __init__(self, default: SourceClient | None = None) -> None:
        self.default: SourceClient = default or HttpSourceClient()
        self._prefixes: list[tuple[str, SourceClient]] = []

    def register(self, prefix: str, client: SourceClient) -> None:
        """Send requests for endpoints starting with `prefix` to `client`."""
        self._prefixes.append((prefix, client))

    def for_url(self, url: str) -> SourceClient:
        """The client for a request URL."""
        for prefix, client in self._prefixes:
            if url.startswith(prefix):
                return client
        return self.default

    async def close(self) -> None:
        """Close every client."""
        for client in {id(c): c for _, c in self._prefixes}.values():
            await client.close()
        await self.default.close()
