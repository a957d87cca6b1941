"""A notification receiver for tests: a small HTTP/1.1 server on 127.0.0.1 in its own thread.

It records every POST (headers and JSON body), answers `status` after `delay` seconds, and can
be taken down (connections refused) and brought up again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Receiver:
    """Start with `up()`; `url(path)` is where to send; `received` lists what came."""

    status: int = 200
    delay: float = 0.0
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = int(s.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/notify") -> str:
        """The URL of a path on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> Receiver:
        """Listen (again)."""
        self._call(self._start)
        return self

    def down(self) -> None:
        """Stop listening and drop open connections."""
        self._call(self._stop)

    def close(self) -> None:
        """Stop for good."""
        self.down()
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies received (on one path)."""
        return [r.body for r in list(self.received) if path is None or r.path == path]

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 10.0) -> None:
        """Wait (blocking) until `predicate(self)` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met in {timeout} s; got "
                                     f"{len(self.received)} requests")
            time.sleep(0.02)

    async def until(self, predicate: Callable[[Receiver], bool], timeout: float = 10.0) -> None:
        """Wait (in a coroutine) until `predicate(self)` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met in {timeout} s; got "
                                     f"{len(self.received)} requests")
            await asyncio.sleep(0.02)

    def _call(self, fn: Callable[[], Any]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(fn(), self._loop).result(10)

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                      reuse_address=True)
            self._writers: set[asyncio.StreamWriter] = set()

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, _, value = line.partition(":")
                        headers[key.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self._server is None:
                    return
                self.received.append(Received(path, headers, orjson.loads(body) if body
                                              else None, time.time()))
                writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
