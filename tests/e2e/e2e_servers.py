"""Real `urbis serve` processes, and a TCP proxy that can cut them off from PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx
import pytest

PG_URL = os.environ.get("URBIS_TEST_DATABASE_URL", "")
needs_pg = pytest.mark.skipif(not PG_URL, reason="URBIS_TEST_DATABASE_URL is not set")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running `urbis serve` process."""

    proc: subprocess.Popen[bytes]
    port: int

    @property
    def api(self) -> str:
        """The base URL of its NGSI-LD API."""
        return f"http://127.0.0.1:{self.port}/ngsi-ld/v1"

    def stop(self) -> None:
        """Terminate it (kill it if it does not stop)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(store: str, *extra: str, timeout: float = 30) -> Server:
    """Start `urbis serve` on a free port and wait until /health answers."""
    port = free_port()
    env = {**os.environ, "URBIS_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "urbis.cli.main", "serve", "--port", str(port), "--store", store,
         *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(proc, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited")
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"urbis serve did not start in {timeout} s")


@dataclass
class TcpProxy:
    """Forwards a local port to PostgreSQL; `down()` cuts every connection and refuses new
    ones, as a server restart or a network failure does, without touching the server."""

    target: tuple[str, int]
    port: int = field(default_factory=free_port)
    _listener: socket.socket | None = None
    _sockets: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, database_url: str) -> str:
        """`database_url` reached through this proxy."""
        parsed = urlparse(database_url)
        user = parsed.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return parsed._replace(netloc=netloc).geturl()

    def up(self) -> None:
        """Accept connections (again)."""
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return  # closed by down()
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
