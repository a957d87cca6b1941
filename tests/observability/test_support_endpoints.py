"""/metrics, /ready, request ids, security headers and CORS, on every backend."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from urbis.api.app import create_app
from urbis.broker.container import Broker
from urbis.settings import Settings, load_settings

E = "/ngsi-ld/v1/entities"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_requests_and_entities(client: httpx.AsyncClient) -> None:
    await client.post(E, json={"id": "urn:ngsi-ld:T:1", "type": "T"})
    await client.post(E, json={"id": "urn:ngsi-ld:T:2", "type": "T"},
                      headers={"NGSILD-Tenant": "city"})
    await client.get(f"{E}/urn:ngsi-ld:T:404")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    created = ("urbis_http_requests_total",
               (("handler", "create_entity"), ("method", "POST"), ("status", "201")))
    missing = ("urbis_http_requests_total",
               (("handler", "retrieve_entity"), ("method", "GET"), ("status", "404")))
    assert got.get(created, 0) >= 2 and got.get(missing, 0) >= 1, sorted(got)[:20]
    assert got[("urbis_entities", (("tenant", ""),))] == 1
    assert got[("urbis_entities", (("tenant", "city"),))] == 1
    assert any(name == "urbis_http_request_duration_seconds_bucket" for name, _ in got)


async def test_ready_reports_each_store(client: httpx.AsyncClient) -> None:
    r = await client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert {c["status"] for c in body["checks"].values()} == {"up"}
    assert set(body["checks"]) == {"entities", "contexts", "subscriptions"}


async def test_ready_is_503_when_a_store_is_down(settings: Settings, broker: Broker) -> None:
    app = create_app(settings, broker=broker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def broken(*_args: object) -> None:
        raise ConnectionError("store gone")

    broker.stores.entities.get = broken  # type: ignore[method-assign]
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        r = await c.get("/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["entities"] == {"status": "down", "error": "ConnectionError"}


async def test_request_id_is_kept_or_made(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"X-Request-Id": "lb-7f3a.1"})
    assert r.headers["x-request-id"] == "lb-7f3a.1"
    made = (await client.get("/health")).headers["x-request-id"]
    assert len(made) == 32
    # an id that could forge log lines or headers is replaced
    r = await client.get("/health", headers={"X-Request-Id": "a b\"c" + "x" * 200})
    assert r.headers["x-request-id"] != "a b\"c" + "x" * 200
    r = await client.get(f"{E}/urn:ngsi-ld:T:404")  # errors carry it too
    assert r.status_code == 404 and r.headers["x-request-id"]


async def test_security_headers_on_every_answer(client: httpx.AsyncClient) -> None:
    for r in (await client.get("/health"), await client.get("/nope"),
              await client.post(E, content=b"{", headers={"content-type": "application/json"})):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "strict-transport-security" not in r.headers  # plain HTTP


async def test_cors_only_when_configured(tmp_path: Path, broker: Broker,
                                         settings: Settings) -> None:
    origin = {"Origin": "https://dashboard.city.example"}
    plain = create_app(settings, broker=broker)
    cors_settings = load_settings(env={}, store=settings.store, auth=False,
                                  cors_origins="https://dashboard.city.example")
    cors = create_app(cors_settings, broker=broker)
    for app, allowed in ((plain, False), (cors, True)):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
            r = await c.get("/health", headers=origin)
            assert ("access-control-allow-origin" in r.headers) is allowed
            pre = await c.options(E, headers={**origin, "Access-Control-Request-Method": "POST"})
            if allowed:
                assert pre.status_code == 200
                assert "NGSILD-Results-Count" in r.headers["access-control-expose-headers"]


async def test_store_latency_is_measured(client: httpx.AsyncClient) -> None:
    await client.post(E, json={"id": "urn:ngsi-ld:T:9", "type": "T"})
    await client.get(f"{E}/urn:ngsi-ld:T:9")
    await client.get(E, params={"type": "T"})
    got = samples((await client.get("/metrics")).text)
    for op in ("get", "query", "mutate"):
        assert got[("urbis_store_operation_seconds_count", (("operation", op),))] >= 1


async def test_notification_metrics_are_exposed(client: httpx.AsyncClient) -> None:
    got = samples((await client.get("/metrics")).text)
    assert got[("urbis_notifications_queued", (("kind", "changes"),))] >= 0
    assert got[("urbis_notifications_queued", (("kind", "retries"),))] >= 0
    assert got[("urbis_history_pending", ())] >= 0
