"""`urbis serve --certfile --keyfile` serves HTTPS; logs are JSON lines with request ids."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from e2e_servers import free_port

pytestmark = pytest.mark.slow


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by openssl."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True)
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_with_security_headers_and_json_logs(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {**os.environ, "URBIS_LOG_LEVEL": "info", "URBIS_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "urbis.cli.main", "serve", "--port", str(port), "--store",
         f"sqlite:///{tmp_path}/urbis.db", "--certfile", str(cert), "--keyfile", str(key)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"https://127.0.0.1:{port}"
        trust = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"{base}/health", verify=trust, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the port
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    lines = [orjson.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert lines, err.decode()
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert proc.returncode in (0, -15)  # uvicorn re-raises SIGTERM after a clean shutdown
    assert not [line for line in lines if line["level"] == "error"]
