"""`urbis serve` as a real process: starts, serves the demo data, keeps what it acknowledged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(store: str, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """Start `urbis serve` and wait until /health answers."""
    env = {**os.environ, "URBIS_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "urbis.cli.main", "serve", "--port", str(port), "--store", store,
         *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited")
    proc.kill()
    raise RuntimeError("urbis serve did not start in 30 s")


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A fresh SQLite store URL."""
    return f"sqlite:///{tmp_path}/urbis.db"


@pytest.fixture
def port() -> Iterator[int]:
    """A free port."""
    yield free_port()


def test_demo_serves_sample_entities(store: str, port: int) -> None:
    proc = start(store, port, "--demo")
    try:
        base = f"http://127.0.0.1:{port}/ngsi-ld/v1"
        types = httpx.get(f"{base}/types").json()["typeList"]
        assert len(types) >= 30
        link = ('<https://raw.githubusercontent.com/smart-data-models/dataModel.Parking/master/'
                'context.jsonld>; rel="http://www.w3.org/ns/json-ld#context"')
        parks = httpx.get(f"{base}/entities", params={"type": "OffStreetParking"},
                          headers={"Link": link}).json()
        assert parks and parks[0]["type"] == "OffStreetParking"
    finally:
        proc.terminate()
        proc.wait(10)


def test_acknowledged_writes_survive_kill_9(store: str, port: int) -> None:
    proc = start(store, port)
    base = f"http://127.0.0.1:{port}/ngsi-ld/v1"
    try:
        for i in range(50):
            r = httpx.post(f"{base}/entities", json={"id": f"urn:ngsi-ld:T:{i}", "type": "T",
                                                     "n": {"type": "Property", "value": i}})
            assert r.status_code == 201
        r = httpx.patch(f"{base}/entities/urn:ngsi-ld:T:7/attrs/n", json={"value": 700})
        assert r.status_code == 204
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc = start(store, port)
    try:
        r = httpx.get(f"{base}/entities", params={"type": "T", "count": "true", "limit": 0})
        assert r.headers["ngsild-results-count"] == "50"
        assert httpx.get(f"{base}/entities/urn:ngsi-ld:T:7").json()["n"]["value"] == 700
    finally:
        proc.terminate()
        proc.wait(10)
