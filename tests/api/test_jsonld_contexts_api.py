"""/ngsi-ld/v1/jsonldContexts over HTTP (ETSI GS CIM 009, 5.13; the ETSI test suite's 05x)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from urbis.api.ngsild.contexts import routes
from urbis.api.responses import problem_response
from urbis.broker.contexts import ContextService
from urbis.context.errors import NgsiError
from urbis.context.jsonld import CORE_CONTEXT_URL
from urbis.storage.sqlite.contexts import SqliteContextStore

BASE = "/ngsi-ld/v1/jsonldContexts"
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
MINIMAL = {"@context": {"Vehicle": "https://example.org/Vehicle",
                        "speed": "https://example.org/speed"}}


async def on_ngsi_error(request: Request, exc: Exception) -> Response:
    """NGSI-LD errors as problem+json, as the real app does."""
    assert isinstance(exc, NgsiError)
    return problem_response(exc)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ContextService]:
    """A ContextService on a fresh SQLite store."""
    store = SqliteContextStore(str(tmp_path / "urbis.db"))
    await store.open()
    yield ContextService(store, fetch_timeout=1.0, max_bytes=100_000, cache_size=8,
                         base_url="http://urbis.test")
    await store.close()


@pytest.fixture
async def client(service: ContextService) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on a small app mounting only the /jsonldContexts routes."""
    app = Starlette(routes=[Mount("/ngsi-ld/v1", routes=routes)],
                    exception_handlers={NgsiError: on_ngsi_error})
    app.state.broker = SimpleNamespace(contexts=service)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        yield c


async def add(client: httpx.AsyncClient, body: Any = MINIMAL) -> str:
    """POST a context; its Location."""
    response = await client.post(BASE, json=body)
    assert response.status_code == 201, response.text
    return response.headers["location"]


def problem(response: httpx.Response, status: int, kind: str) -> None:
    """Assert an NGSI-LD problem response."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == ERRORS + kind


async def test_add_serve_and_delete(client: httpx.AsyncClient) -> None:
    response = await client.post(BASE, json={**MINIMAL, "junk": 1},
                                 headers={"Content-Type": "application/ld+json"})
    assert response.status_code == 201 and response.content == b""
    location = response.headers["location"]
    assert location.startswith(BASE + "/")
    served = await client.get(location)
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/json"
    assert served.json() == MINIMAL  # members outside @context are discarded (5.13.2.4)
    meta = (await client.get(location, params={"details": "true"})).json()
    assert meta["kind"] == "Hosted" and meta["URL"] == "http://urbis.test" + location
    assert set(meta) <= {"URL", "localId", "kind", "createdAt", "lastUsage", "numberOfHits",
                         "extraInfo"}
    deleted = await client.delete(location)
    assert deleted.status_code == 204 and deleted.content == b""
    problem(await client.get(location), 404, "ResourceNotFound")
    problem(await client.delete(location), 404, "ResourceNotFound")


async def test_hosted_url_resolves_without_fetching(client: httpx.AsyncClient,
                                                    service: ContextService) -> None:
    location = await add(client)
    tm = await service.term_map("http://urbis.test" + location)
    assert tm.expand("speed") == "https://example.org/speed"
    meta = (await client.get(location, params={"details": "true"})).json()
    assert meta["numberOfHits"] == 1


@pytest.mark.parametrize("content, content_type, status, kind", [
    (b"{not json", "application/json", 400, "InvalidRequest"),
    (b'{"no": "context"}', "application/json", 400, "InvalidRequest"),
    (b"[1]", "application/json", 400, "InvalidRequest"),
    (b'{"@context": 42}', "application/json", 400, "BadRequestData"),
    (b'{"@context": ["https://x.org/c", 7]}', "application/json", 400, "BadRequestData"),
    (b'{"@context": {"a": {"@id": 5}}}', "application/json", 400, "BadRequestData"),
    (b'{"@context": {}}', "text/plain", 415, "UnsupportedMediaType"),
])
async def test_add_errors(client: httpx.AsyncClient, content: bytes, content_type: str,
                          status: int, kind: str) -> None:
    response = await client.post(BASE, content=content, headers={"Content-Type": content_type})
    problem(response, status, kind)
    assert (await client.get(BASE, params={"kind": "Hosted"})).json() == []


async def test_list(client: httpx.AsyncClient) -> None:
    first, second = await add(client), await add(client)
    urls = (await client.get(BASE)).json()
    assert urls[0] == CORE_CONTEXT_URL
    assert urls[1:] == ["http://urbis.test" + first, "http://urbis.test" + second]
    hosted = (await client.get(BASE, params={"kind": "Hosted", "details": "true"})).json()
    assert [h["localId"] for h in hosted] == [first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]]
    assert all(h["kind"] == "Hosted" for h in hosted)
    assert (await client.get(BASE, params={"kind": "ImplicitlyCreated"})).json() == []
    cached = (await client.get(BASE, params={"kind": "Cached", "details": "false"})).json()
    assert cached == [CORE_CONTEXT_URL]


@pytest.mark.parametrize("params", [{"kind": "other"}, {"details": "other"},
                                    {"details": "true", "kind": "other"}])
async def test_list_errors(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    problem(await client.get(BASE, params=params), 400, "BadRequestData")


async def test_core_context(client: httpx.AsyncClient) -> None:
    core = BASE + "/" + quote(CORE_CONTEXT_URL, safe="")
    meta = (await client.get(core, params={"details": "true"})).json()
    assert meta["kind"] == "Cached" and meta["URL"] == CORE_CONTEXT_URL
    problem(await client.get(core), 422, "OperationNotSupported")
    problem(await client.delete(core), 400, "BadRequestData")
    problem(await client.delete(core, params={"reload": "false"}), 400, "BadRequestData")
    assert (await client.delete(core, params={"reload": "true"})).status_code == 204


@pytest.mark.parametrize("context_id, reload, status, kind", [
    ("wrong_id_context", "true", 400, "BadRequestData"),
    ("wrong_id_context", "false", 404, "ResourceNotFound"),
    ("wrong_id_context", None, 404, "ResourceNotFound"),
    ("wrong_id_context", "xxx", 400, "BadRequestData"),
    (None, "true", 400, "BadRequestData"),
])
async def test_delete_errors(client: httpx.AsyncClient, context_id: str | None,
                             reload: str | None, status: int, kind: str) -> None:
    location = await add(client)
    target = location if context_id is None else f"{BASE}/{context_id}"
    params = {} if reload is None else {"reload": reload}
    problem(await client.delete(target, params=params), status, kind)
    assert (await client.get(location)).status_code == 200  # nothing was deleted


async def test_serve_bad_details(client: httpx.AsyncClient) -> None:
    location = await add(client)
    problem(await client.get(location, params={"details": "maybe"}), 400, "BadRequestData")
    problem(await client.get(BASE + "/nope", params={"details": "true"}), 404,
            "ResourceNotFound")
