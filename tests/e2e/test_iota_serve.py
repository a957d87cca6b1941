"""`urbis serve` runs the IoT agent's ports in the same process: provision, measure, read back,
stop without losing what was acknowledged; a port in use fails the start-up clearly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from e2e_servers import free_port

pytestmark = pytest.mark.slow
CITY = {"fiware-service": "city", "fiware-servicepath": "/"}


def start(store: str, ports: tuple[int, int, int]) -> subprocess.Popen[bytes]:
    """`urbis serve` with the agent's ports; waits until all three answer."""
    api, iota, south = ports
    env = {**os.environ, "URBIS_LOG_LEVEL": "warning", "URBIS_IOTA_PORT": str(iota),
           "URBIS_IOTA_HTTP_PORT": str(south)}
    proc = subprocess.Popen([sys.executable, "-m", "urbis.cli.main", "serve", "--port",
                             str(api), "--store", store], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if all(httpx.get(f"http://127.0.0.1:{p}/health", timeout=1).status_code == 200
                   for p in ports):
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "exited")
    proc.kill()
    raise RuntimeError("urbis serve did not start in 30 s")


def test_agent_ports_provision_measure_and_stop(tmp_path: Path) -> None:
    ports = (free_port(), free_port(), free_port())
    store = f"sqlite:///{tmp_path}/urbis.db"
    proc = start(store, ports)
    try:
        iota, south = (f"http://127.0.0.1:{p}" for p in ports[1:])
        group = {"apikey": "e2e", "entity_type": "Thermometer",
                 "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}
        r = httpx.post(f"{iota}/iot/services", json={"services": [group]}, headers=CITY)
        assert r.status_code == 201, r.text
        for n in range(20):
            r = httpx.post(f"{south}/iot/d", params={"k": "e2e", "i": "th1"}, content=f"t|{n}")
            assert r.status_code == 200, r.text
        r = httpx.get(f"http://127.0.0.1:{ports[0]}/ngsi-ld/v1/entities/"
                      "urn:ngsi-ld:Thermometer:th1", headers={"NGSILD-Tenant": "city"})
        assert r.json()["temperature"]["value"] == 19
        r = httpx.post(f"{south}/iot/json", params={"k": "e2e", "i": "th1"}, content=b"{")
        assert r.status_code == 400 and r.json()["name"] == "BAD_REQUEST"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert b"IoT agent provisioning" in out and b"IoT agent HTTP southbound" in out
    proc = start(store, ports)  # what was acknowledged is there after the restart
    try:
        r = httpx.get(f"http://127.0.0.1:{ports[1]}/iot/deadletter", headers=CITY)
        assert [x["reason"] for x in r.json()["deadletters"]] == ["syntax"]
        r = httpx.get(f"http://127.0.0.1:{ports[1]}/iot/devices/th1", headers=CITY)
        assert r.json()["lastSeen"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_an_agent_port_in_use_fails_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        env = {**os.environ, "URBIS_IOTA_PORT": str(busy), "URBIS_IOTA_HTTP_PORT": "0"}
        proc = subprocess.run([sys.executable, "-m", "urbis.cli.main", "serve", "--port",
                               str(free_port()), "--store", f"sqlite:///{tmp_path}/u.db"],
                              env=env, capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert b"address already in use" in proc.stderr.lower()
