"""`urbis serve` with auth: the first start prints an admin key once; --no-auth says so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from e2e_servers import free_port

from urbis.context.credentials import new_key

pytestmark = pytest.mark.slow
E = "/ngsi-ld/v1/entities"


def serve(store: str, port: int, *extra: str, **env: str) -> subprocess.Popen[str]:
    """Start `urbis serve`; wait for /health."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "urbis.cli.main", "serve", "--port", str(port), "--store", store,
         *extra], env={**os.environ, "URBIS_LOG_FORMAT": "text", **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(proc.communicate()[1])
        time.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.terminate()
    return proc.communicate(timeout=20)


def test_first_start_prints_an_admin_key_once(tmp_path: Path) -> None:
    store, port = f"sqlite:///{tmp_path}/urbis.db", free_port()
    out, _ = stop(serve(store, port, URBIS_AUTH="true"))
    keys = [w for line in out.splitlines() for w in line.split() if w.startswith("urbis_")]
    assert len(keys) == 1, out
    proc = serve(store, port, URBIS_AUTH="true")
    try:
        base = f"http://127.0.0.1:{port}"
        body = {"id": "urn:ngsi-ld:T:1", "type": "T"}
        assert httpx.post(base + E, json=body,
                          headers={"Authorization": "Bearer urbis_000000000000_x"}
                          ).status_code == 401
        r = httpx.post(base + E, json=body, headers={"Authorization": f"Bearer {keys[0]}"})
        assert r.status_code == 201, r.text
    finally:
        out, _ = stop(proc)
    assert "urbis_" not in out  # not printed again


def test_admin_key_from_the_environment(tmp_path: Path) -> None:
    store, port = f"sqlite:///{tmp_path}/urbis.db", free_port()
    key = new_key()[1]
    proc = serve(store, port, URBIS_AUTH="true", URBIS_ADMIN_KEY=key)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/admin/apikeys", headers={"X-API-Key": key})
        assert r.status_code == 200 and r.json()[0]["roles"] == ["admin"]
    finally:
        out, err = stop(proc)
    assert key not in out + err  # never echoed


def test_no_auth_says_so_loudly(tmp_path: Path) -> None:
    port = free_port()
    proc = serve(f"sqlite:///{tmp_path}/urbis.db", port, "--no-auth", URBIS_AUTH="true")
    try:
        r = httpx.post(f"http://127.0.0.1:{port}{E}", json={"id": "urn:ngsi-ld:T:1", "type": "T"})
        assert r.status_code == 201
    finally:
        _, err = stop(proc)
    assert "AUTHENTICATION IS OFF" in err
