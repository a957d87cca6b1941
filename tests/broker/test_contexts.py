"""ContextService over SQLite, with remote @contexts served by a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from urbis.broker.contexts import ContextService
from urbis.context.actor import Actor
from urbis.context.errors import (
    BadRequestData,
    InvalidRequest,
    LdContextNotAvailable,
    OperationNotSupported,
    ResourceNotFound,
)
from urbis.context.jsonld import CORE_CONTEXT_URL, CORE_URLS, DEFAULT_VOCAB, NGSI_LD
from urbis.storage.base import ContextStore, StoredContext
from urbis.storage.sqlite.contexts import SqliteContextStore

EX = "http://example.org/"

ADMIN = Actor()  # the platform itself


class ContextServer:
    """A local HTTP server of @context documents that counts the requests it gets."""

    def __init__(self) -> None:
        self.docs: dict[str, Any] = {}
        self.hits: Counter[str] = Counter()
        self.delay: dict[str, float] = {}
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        """The absolute URL of a path on this server."""
        return self.base + path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server.lock:
                    server.hits[self.path] += 1
                    doc = server.docs.get(self.path)
                time.sleep(server.delay.get(self.path, 0))
                if isinstance(doc, tuple):  # (status, headers, body)
                    status, headers, body = doc
                elif doc is None:
                    status, headers, body = 404, {}, b"not found"
                else:
                    status, headers = 200, {"Content-Type": "application/ld+json"}
                    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def server() -> Iterator[ContextServer]:
    """A running local @context server."""
    srv = ContextServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteContextStore]:
    """An opened SQLite context store."""
    s = SqliteContextStore(str(tmp_path / "urbis.db"))
    await s.open()
    yield s
    await s.close()


def make_service(store: ContextStore, **kw: Any) -> ContextService:
    """A service with short limits for tests."""
    options: dict[str, Any] = {"fetch_timeout": 1.0, "max_bytes": 100_000, "cache_size": 16,
                               "base_url": "http://broker.test"}
    options.update(kw)
    return ContextService(store, **options)


@pytest.fixture
def service(store: SqliteContextStore) -> ContextService:
    """A ContextService on the store."""
    return make_service(store)


def ctx(**terms: str) -> dict[str, Any]:
    """A context document defining terms under http://example.org/."""
    return {"@context": {t: EX + iri for t, iri in terms.items()}}


# ---- the store ----

async def test_store_put_get_find_list_delete(store: SqliteContextStore) -> None:
    a = StoredContext("a", "http://x/a", "hosted", {"@context": {"t": "http://x/t"}}, "2026-01-01")
    b = StoredContext("http://y/b", "http://y/b", "cached", {"@context": {}}, "2026-01-02")
    await store.put_context(a)
    await store.put_context(b)
    assert await store.get_context("a") == a
    assert await store.find_context_by_url("http://y/b") == b
    assert [c.id for c in await store.list_contexts()] == ["a", "http://y/b"]
    assert [c.id for c in await store.list_contexts("cached")] == ["http://y/b"]
    a.hits, a.last_used_at = 3, "2026-01-03"
    await store.put_context(a)
    assert (await store.get_context("a")) == a
    assert await store.delete_context("a") is True
    assert await store.delete_context("a") is False
    assert await store.get_context("a") is None


# ---- resolution ----

async def test_core_only_and_inline(service: ContextService) -> None:
    core = await service.term_map(None)
    assert core.expand("location") == NGSI_LD + "location"
    tm = await service.term_map({"speed": EX + "speed"})
    assert tm.expand("speed") == EX + "speed"
    assert tm.expand("unknown") == DEFAULT_VOCAB + "unknown"
    assert await service.term_map({"speed": EX + "speed"}) is tm  # compiled once


async def test_core_urls_are_never_fetched(service: ContextService, server: ContextServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_fetch(url: str) -> Any:
        raise AssertionError(f"fetched {url}")

    monkeypatch.setattr(service, "fetch", no_fetch)
    for url in CORE_URLS:
        tm = await service.term_map(url)
        assert tm.expand("observedAt") == NGSI_LD + "observedAt"
        tm = await service.term_map([{"speed": EX + "speed"}, url])
        assert tm.expand("speed") == EX + "speed"
    assert not server.hits
    assert await service.store.list_contexts() == []


async def test_remote_context_is_fetched_once_and_cached(
        service: ContextService, store: SqliteContextStore, server: ContextServer) -> None:
    server.docs["/a.jsonld"] = ctx(speed="speed")
    url = server.url("/a.jsonld")
    tm = await service.term_map(url)
    assert tm.expand("speed") == EX + "speed"
    assert (await service.term_map(url)).expand("speed") == EX + "speed"
    assert (await service.term_map([url, {"brand": EX + "brand"}])).expand("speed") == EX + "speed"
    assert server.hits["/a.jsonld"] == 1
    cached = await store.get_context(url)
    assert cached is not None and cached.kind == "cached" and cached.body == ctx(speed="speed")
    fresh = make_service(store)  # another worker, or after a restart: from the store
    assert (await fresh.term_map(url)).expand("speed") == EX + "speed"
    assert server.hits["/a.jsonld"] == 1


async def test_accept_header_and_redirects(service: ContextService, server: ContextServer) -> None:
    server.docs["/moved"] = (302, {"Location": "/a.jsonld"}, b"")
    server.docs["/a.jsonld"] = ctx(speed="speed")
    tm = await service.term_map(server.url("/moved"))
    assert tm.expand("speed") == EX + "speed"
    assert server.hits["/moved"] == 1 and server.hits["/a.jsonld"] == 1


@pytest.mark.parametrize("doc", [
    None,  # 404
    (500, {}, b"{}"),
    (200, {}, b"this is not json"),
    (200, {}, b'{"no": "context"}'),
    (200, {}, b'{"@context": 42}'),
    (200, {}, b"[1, 2]"),
    (200, {}, b'{"@context": {"x": "' + b"a" * 200_000 + b'"}}'),
], ids=["404", "500", "not-json", "no-context", "bad-context", "array", "too-big"])
async def test_unavailable_contexts(service: ContextService, server: ContextServer,
                                    doc: Any) -> None:
    if doc is not None:
        server.docs["/c"] = doc
    url = server.url("/c")
    with pytest.raises(LdContextNotAvailable) as err:
        await service.term_map(url)
    assert url in err.value.detail
    assert await service.store.get_context(url) is None


async def test_slow_server_times_out(store: SqliteContextStore, server: ContextServer) -> None:
    service = make_service(store, fetch_timeout=0.3)
    server.docs["/slow"] = ctx(speed="speed")
    server.delay["/slow"] = 1.5
    started = time.monotonic()
    with pytest.raises(LdContextNotAvailable, match="/slow"):
        await service.term_map(server.url("/slow"))
    assert time.monotonic() - started < 1.2


async def test_unreachable_and_non_http_urls(service: ContextService) -> None:
    with pytest.raises(LdContextNotAvailable, match=r"127\.0\.0\.1:9"):
        await service.term_map("http://127.0.0.1:9/nothing.jsonld")
    with pytest.raises(LdContextNotAvailable, match="ftp://"):
        await service.term_map("ftp://example.org/ctx.jsonld")


async def test_invalid_inline_contexts(service: ContextService) -> None:
    for bad in (42, [{"a": 5}], ["relative.jsonld"], [[EX]], {"a": {"@id": 3}}, True):
        with pytest.raises(BadRequestData):
            await service.term_map(bad)


async def test_nested_and_relative_context_urls(service: ContextService,
                                                server: ContextServer) -> None:
    server.docs["/models/a.jsonld"] = ctx(speed="speed")
    server.docs["/models/b.jsonld"] = {"@context": ["a.jsonld", {"brand": EX + "brand"},
                                                    CORE_CONTEXT_URL]}
    server.docs["/top.jsonld"] = {"@context": [server.url("/models/b.jsonld"),
                                               {"fuel": EX + "fuel"}]}
    tm = await service.term_map(server.url("/top.jsonld"))
    assert [tm.expand(t) for t in ("speed", "brand", "fuel")] == [EX + "speed", EX + "brand",
                                                                  EX + "fuel"]
    assert tm.expand("location") == NGSI_LD + "location"
    urls = {c.url for c in await service.store.list_contexts("cached")}
    assert urls == {server.url(p) for p in ("/top.jsonld", "/models/b.jsonld",
                                            "/models/a.jsonld")}


async def test_context_cycles_end_and_import_merges(service: ContextService,
                                                   server: ContextServer) -> None:
    server.docs["/one"] = {"@context": [server.url("/two"), {"a": EX + "a"}]}
    server.docs["/two"] = {"@context": [server.url("/one"), {"b": EX + "b"}]}
    tm = await service.term_map(server.url("/one"))
    assert (tm.expand("a"), tm.expand("b")) == (EX + "a", EX + "b")
    server.docs["/base"] = ctx(a="a", b="b")
    tm = await service.term_map({"@import": server.url("/base"), "b": EX + "bee"})
    assert (tm.expand("a"), tm.expand("b")) == (EX + "a", EX + "bee")


async def test_depth_limit(service: ContextService, server: ContextServer) -> None:
    for i in range(12):
        server.docs[f"/d{i}"] = {"@context": [server.url(f"/d{i + 1}"), {f"t{i}": EX + str(i)}]}
    with pytest.raises(BadRequestData, match="deep"):
        await service.term_map(server.url("/d0"))


async def test_concurrent_first_requests_share_one_fetch(
        service: ContextService, server: ContextServer) -> None:
    server.docs["/shared"] = ctx(speed="speed")
    server.delay["/shared"] = 0.3
    url = server.url("/shared")
    maps = await asyncio.gather(*(service.term_map(url) for _ in range(10)),
                                *(service.term_map([url, {"n": EX + str(i)}]) for i in range(5)))
    assert all(m.expand("speed") == EX + "speed" for m in maps)
    assert server.hits["/shared"] == 1


async def test_usage_is_counted(service: ContextService, server: ContextServer) -> None:
    server.docs["/a.jsonld"] = ctx(speed="speed")
    url = server.url("/a.jsonld")
    for _ in range(3):
        await service.term_map(url)
    meta = await service.serve(ADMIN, url, details=True)
    assert meta["numberOfHits"] == 3 and "lastUsage" in meta
    await service.close()
    stored = await service.store.get_context(url)
    assert stored is not None and stored.hits == 3 and stored.last_used_at is not None


async def test_compiled_maps_are_bounded(store: SqliteContextStore) -> None:
    service = make_service(store, cache_size=2)
    for i in range(5):
        await service.term_map({"t": f"{EX}{i}"})
    assert len(service._maps) == 2


# ---- preloading ----

async def test_bundled_smart_data_models_need_no_network(
        service: ContextService, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_fetch(url: str) -> Any:
        raise AssertionError(f"fetched {url}")

    monkeypatch.setattr(service, "fetch", no_fetch)
    assert service.preload_bundled() == 37
    for url in ("https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/"
                "master/context.jsonld",
                "https://smart-data-models.github.io/dataModel.Parking/context.jsonld"):
        tm = await service.term_map(url)
        assert tm.expand("OffStreetParking") == \
            "https://smartdatamodels.org/dataModel.Parking/OffStreetParking"
        assert (await service.get(url)).kind == "cached"
    legacy = await service.term_map("https://smartdatamodels.org/context.jsonld")
    assert legacy.expand("WeatherObserved").endswith("#WeatherObserved")


def test_preload_rejects_non_context(service: ContextService) -> None:
    with pytest.raises(LdContextNotAvailable):
        service.preload("http://x/y", {"no": "context"})


# ---- management (5.13) ----

async def test_hosted_contexts(service: ContextService, server: ContextServer) -> None:
    stored = await service.add_hosted(ADMIN, {"@context": {"speed": EX + "speed"}, "extra": 1})
    assert stored.kind == "hosted"
    assert stored.url == f"http://broker.test/ngsi-ld/v1/jsonldContexts/{stored.id}"
    assert await service.serve(ADMIN, stored.id) == {"@context": {"speed": EX + "speed"}}
    assert await service.serve(ADMIN, stored.url) == {"@context": {"speed": EX + "speed"}}
    tm = await service.term_map(stored.url)
    assert tm.expand("speed") == EX + "speed"
    assert not server.hits
    meta = await service.serve(ADMIN, stored.id, details=True)
    assert meta == {"URL": stored.url, "localId": stored.id, "kind": "Hosted",
                    "createdAt": stored.created_at, "numberOfHits": 1,
                    "lastUsage": meta["lastUsage"]}


async def test_hosted_context_listing_urls_are_cached_on_use(
        service: ContextService, server: ContextServer) -> None:
    server.docs["/a.jsonld"] = ctx(speed="speed")
    stored = await service.add_hosted(
        ADMIN, {"@context": [server.url("/a.jsonld"), CORE_CONTEXT_URL]})
    assert not server.hits  # nothing is fetched when added
    assert (await service.term_map(stored.url)).expand("speed") == EX + "speed"
    assert (await service.get(server.url("/a.jsonld"))).kind == "cached"


@pytest.mark.parametrize("body, error", [
    ([], InvalidRequest), ("x", InvalidRequest), ({"no": 1}, InvalidRequest),
    ({"@context": 42}, BadRequestData), ({"@context": [EX, 7]}, BadRequestData),
    ({"@context": "relative"}, BadRequestData), ({"@context": {"a": {"@id": 1}}}, BadRequestData),
])
async def test_add_invalid(service: ContextService, body: Any, error: type) -> None:
    with pytest.raises(error):
        await service.add_hosted(ADMIN, body)
    assert await service.list(ADMIN, "Hosted") == []


async def test_list_kinds_and_details(service: ContextService, server: ContextServer) -> None:
    server.docs["/a.jsonld"] = ctx(speed="speed")
    hosted = await service.add_hosted(ADMIN, {"@context": {"t": EX + "t"}})
    implicit = await service.add_implicit([server.url("/a.jsonld")])
    await service.term_map(server.url("/a.jsonld"))
    assert await service.list(ADMIN) == [CORE_CONTEXT_URL, hosted.url, implicit.url,
                                    server.url("/a.jsonld")]
    assert await service.list(ADMIN, "Hosted") == [hosted.url]
    assert await service.list(ADMIN, "implicitlycreated") == [implicit.url]
    assert await service.list(ADMIN, "Cached") == [CORE_CONTEXT_URL, server.url("/a.jsonld")]
    details = await service.list(ADMIN, "Cached", details=True)
    assert [d["kind"] for d in details] == ["Cached", "Cached"]
    assert details[1]["localId"] == server.url("/a.jsonld")
    with pytest.raises(BadRequestData):
        await service.list(ADMIN, "Other")


async def test_serve_rules(service: ContextService, server: ContextServer) -> None:
    server.docs["/a.jsonld"] = ctx(speed="speed")
    await service.term_map(server.url("/a.jsonld"))
    with pytest.raises(OperationNotSupported):
        await service.serve(ADMIN, server.url("/a.jsonld"))
    assert (await service.serve(ADMIN, CORE_CONTEXT_URL, details=True))["kind"] == "Cached"
    with pytest.raises(ResourceNotFound):
        await service.serve(ADMIN, "nope")
    with pytest.raises(ResourceNotFound):
        await service.serve(ADMIN, "nope", details=True)


async def test_delete_and_reload(service: ContextService, server: ContextServer) -> None:
    server.docs["/a.jsonld"] = ctx(speed="speed")
    url = server.url("/a.jsonld")
    assert (await service.term_map(url)).expand("speed") == EX + "speed"
    server.docs["/a.jsonld"] = ctx(speed="speed2")
    await service.delete(ADMIN, url, reload=True)
    assert server.hits["/a.jsonld"] == 2
    assert (await service.term_map(url)).expand("speed") == EX + "speed2"
    server.docs.pop("/a.jsonld")
    with pytest.raises(LdContextNotAvailable, match=r"/a\.jsonld"):
        await service.delete(ADMIN, url, reload=True)
    assert (await service.get(url)).body == ctx(speed="speed2")  # kept after a failed reload
    await service.delete(ADMIN, url)
    with pytest.raises(ResourceNotFound):
        await service.get(url)
    with pytest.raises(LdContextNotAvailable):
        await service.term_map(url)  # gone from the store and from every in-memory cache


async def test_delete_rules(service: ContextService) -> None:
    hosted = await service.add_hosted(ADMIN, {"@context": {"t": EX + "t"}})
    with pytest.raises(BadRequestData):
        await service.delete(ADMIN, hosted.id, reload=True)
    with pytest.raises(BadRequestData):
        await service.delete(ADMIN, "unknown", reload=True)
    with pytest.raises(ResourceNotFound):
        await service.delete(ADMIN, "unknown")
    with pytest.raises(BadRequestData, match="core"):
        await service.delete(ADMIN, CORE_CONTEXT_URL)
    await service.delete(ADMIN, CORE_CONTEXT_URL, reload=True)  # built in: nothing to fetch
    await service.delete(ADMIN, hosted.url)
    with pytest.raises(ResourceNotFound):
        await service.delete(ADMIN, hosted.id)
