"""A mock NGSI-LD context source for tests: a Starlette app served by uvicorn in a thread.

It holds entities (normalized, compacted with the core @context), answers GET
/entities/{id}, GET /entities (by type and id), /types and /attributes from them, 204 to
writes, and records every request. `behaviour` makes it misbehave: "slow" (sleeps `delay` s),
"error" (500 problem), "garbage" (200, not JSON), "wrong" (200, JSON of the wrong shape).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

API = "/ngsi-ld/v1"


@dataclass
class Seen:
    """One request the source got."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class MockSource:
    """Start with `start()`, stop with `stop()`; `endpoint` is what to register."""

    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    behaviour: str = "ok"
    delay: float = 5.0
    write_status: int = 204
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """The base URL to register (the source appends /ngsi-ld/v1/...)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MockSource:
        """Listen on a free loopback port."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        app = Starlette(routes=[Route("/{path:path}", self._handle,
                                      methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("mock source did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    def put(self, entity: dict[str, Any]) -> None:
        """Hold an entity (normalized, with createdAt / modifiedAt where wanted)."""
        self.entities[entity["id"]] = entity

    def requests(self, method: str | None = None) -> list[Seen]:
        """The requests received (of one method)."""
        return [s for s in self.seen if method is None or s.method == method]

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        self.seen.append(Seen(request.method, "/" + request.path_params["path"],
                              dict(request.query_params), dict(request.headers),
                              orjson.loads(raw) if raw else None))
        if self.behaviour == "slow":
            await asyncio.sleep(self.delay)
        elif self.behaviour == "error":
            return _json({"type": "https://uri.etsi.org/ngsi-ld/errors/InternalError",
                          "title": "boom", "detail": "the source broke"}, 500)
        elif self.behaviour == "garbage":
            return Response(b"<html>not json", 200, media_type="text/html")
        elif self.behaviour == "wrong":
            return _json({"unexpected": True} if request.method == "GET" else [1, 2], 200)
        if request.method != "GET":
            return Response(status_code=self.write_status)
        return self._read("/" + request.path_params["path"], dict(request.query_params))

    def _read(self, path: str, params: dict[str, str]) -> Response:
        if path == "/context.jsonld":  # a caller's @context, served for tests
            return _json({"@context": {"ex": "https://example.org/city/",
                                       "lux": "ex:lux"}}, 200)
        if path.startswith(f"{API}/entities/"):
            entity = self.entities.get(path[len(f"{API}/entities/"):])
            return _json(entity, 200) if entity else _json(
                {"type": "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound",
                 "title": "not found", "detail": "no such entity"}, 404)
        if path == f"{API}/entities":
            found = [e for id_, e in sorted(self.entities.items()) if _selected(e, params)]
            offset, limit = int(params.get("offset", 0)), int(params.get("limit", 20))
            headers = {"NGSILD-Results-Count": str(len(found))} if params.get("count") else {}
            return _json(found[offset:offset + limit], 200, headers)
        if path == f"{API}/types":
            types = sorted({e["type"] for e in self.entities.values()})
            return _json([{"id": t, "type": "EntityType", "typeName": t, "attributeNames": sorted(
                {k for e in self.entities.values() if e["type"] == t for k in e
                 if k not in ("id", "type", "createdAt", "modifiedAt")})} for t in types], 200)
        return _json([], 200)


def _selected(entity: dict[str, Any], params: dict[str, str]) -> bool:
    if "type" in params and entity["type"] not in params["type"].split(","):
        return False
    return "id" not in params or entity["id"] in params["id"].split(",")


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
