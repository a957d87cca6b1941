"""A real `urbis serve` process on loopback, on a fresh store, always stopped at the end."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlparse

HOST = "127.0.0.1"


class ServerError(RuntimeError):
    """The server did not start, or died."""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def get_status(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of one GET on the server."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Server:
    """`urbis serve` as a subprocess in its own process group; use as a context manager."""

    def __init__(self, workdir: Path, *, synchronous: str = "full", port: int | None = None,
                 start_timeout: float = 60.0, store: str | None = None, workers: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.synchronous = synchronous
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.store = store or f"sqlite:///{workdir / 'urbis.db'}"
        self.workers = workers
        self.env = env or {}
        # The PostgreSQL database (its backends' CPU is measured apart), None on SQLite.
        self.database = (urlparse(self.store).path.lstrip("/") or None
                         if self.store.startswith("postgres") else None)
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the server."""
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        """The exact command line that starts the server."""
        workers = ["--workers", str(self.workers)] if self.workers > 1 else []
        return [sys.executable, "-m", "urbis.cli.main", "serve", "--host", HOST,
                "--port", str(self.port), "--store", self.store, *workers]

    def start(self) -> None:
        """Start the process and wait until /health answers 200."""
        env = {**os.environ, "URBIS_SQLITE_SYNCHRONOUS": self.synchronous,
               "URBIS_LOG_LEVEL": "warning", "URBIS_AUTH": "false", **self.env}
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(self.command(), env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            log.close()
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if get_status(self.port, "/health", timeout=1.0)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServerError(f"urbis serve did not answer /health within {self.start_timeout:.0f} s"
                          f"\n{self.log_tail()}")

    def check_alive(self) -> None:
        """Raise ServerError (with the log tail) if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(f"urbis serve exited with code {self.proc.returncode}"
                              f"\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after 10 s; idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        self._signal(proc, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            self._signal(proc, signal.SIGKILL)
            proc.wait(10)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # our own session: the server and nothing else
        except ProcessLookupError:
            pass

    def __enter__(self) -> Server:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

