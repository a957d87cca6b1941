"""API keys across workers, the CLI, first-start bootstrap, and rate limits."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from urbis.api.app import create_app
from urbis.api.auth import RateLimiter
from urbis.broker.container import build_broker
from urbis.cli.main import main
from urbis.context.actor import Actor
from urbis.context.errors import Unauthorized
from urbis.security.apikeys import KeyRequest
from urbis.settings import Settings


def test_token_bucket() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.retry_after("p", now=100.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("p", now=100.0) == 1
    assert limiter.retry_after("q", now=100.0) == 0  # per principal
    assert limiter.retry_after("p", now=100.6) == 0  # refilled 1.2 tokens
    slow = RateLimiter(rate=0.1, burst=1)
    assert slow.retry_after("p", now=0.0) == 0
    assert slow.retry_after("p", now=0.0) == 10


async def test_http_429_with_retry_after(settings: Settings) -> None:
    limited = replace(settings, rate_limit=1.0, rate_burst=2).validate()
    broker = await build_broker(limited)
    try:
        app = create_app(limited, broker=broker)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
            codes = [(await c.get("/ngsi-ld/v1/types")).status_code for _ in range(3)]
            assert codes[:2] == [200, 200] and codes[2] == 429
            r = await c.get("/ngsi-ld/v1/types")
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert r.json()["type"] == "urn:urbis:problem:TooManyRequests"
            assert (await c.get("/health")).status_code == 200  # probes are not limited
    finally:
        await broker.close()


async def test_revocation_reaches_every_worker(settings: Settings) -> None:
    if settings.store.startswith("sqlite"):
        pytest.skip("one process per SQLite store")
    first, second = await build_broker(settings), await build_broker(settings)
    try:
        assert first.apikeys and second.authenticator and first.authenticator
        key, secret = await first.apikeys.create(Actor(), KeyRequest("svc", ["operator"]))
        await second.authenticator.identify(None, secret)  # cached in the second worker
        await first.apikeys.revoke(Actor(), key.id)
        for _ in range(50):  # LISTEN/NOTIFY delivers within milliseconds
            try:
                await second.authenticator.identify(None, secret)
            except Unauthorized:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the second worker still accepts a revoked key")
    finally:
        await first.close()
        await second.close()


def test_cli_create_list_revoke(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", settings.store]
    assert main(["apikey", "create", *store, "--name", "parking sensors", "--role", "device",
                 "--tenant", "city", "--entity", "urn:ngsi-ld:ParkingSpot:*"]) == 0
    out = capsys.readouterr().out
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("urbis_")
    key_id = secret.split("_")[1]
    assert main(["apikey", "list", *store]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing and secret not in listing and "active" in listing
    assert main(["apikey", "revoke", *store, key_id]) == 0
    assert main(["apikey", "revoke", *store, key_id]) == 1  # not active any more
    assert "no active API key" in capsys.readouterr().err
    assert main(["apikey", "create", *store, "--name", "d", "--role", "device"]) == 1
    assert main(["apikey", "new-secret"]) == 0
    assert capsys.readouterr().out.startswith("urbis_")
