"""The audit log end to end: who changed what, refusals, the chain, /admin/audit, the CLI."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from urbis.api.app import create_app
from urbis.broker.container import Broker, build_broker
from urbis.cli.main import main
from urbis.context.actor import Actor
from urbis.context.audit import AuditFilter
from urbis.security.apikeys import KeyRequest
from urbis.settings import Settings
from urbis.storage.registry import sqlite_path

E = "/ngsi-ld/v1/entities"
CAR = "urn:ngsi-ld:Car:1"
SPEED = "https://uri.etsi.org/ngsi-ld/default-context/speed"


async def raw(store: str, sql: str) -> None:
    """Run SQL behind urbis's back (an intruder with database access)."""
    if store.startswith("sqlite"):
        conn = sqlite3.connect(sqlite_path(store), isolation_level=None)
        try:
            conn.executescript(sql)
        finally:
            conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(store)
    try:
        await pg.execute("SET session_replication_role = replica; " + sql)
    finally:
        await pg.close()


# An intruder with DDL rights can get past the append-only triggers (on PostgreSQL a
# superuser session skips them); the hash chain still gives the change away.
DROP_GUARDS = {"sqlite": "DROP TRIGGER audit_log_sealed; DROP TRIGGER audit_log_purge;",
               "postgresql": ""}


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    return replace(settings, auth=True).validate()


@pytest.fixture
async def auth_broker(auth_settings: Settings) -> AsyncIterator[Broker]:
    broker = await build_broker(auth_settings)
    yield broker
    await broker.close()


@pytest.fixture
async def keys(auth_broker: Broker) -> dict[str, str]:
    assert auth_broker.apikeys is not None
    admin = await auth_broker.apikeys.bootstrap(None)
    assert admin
    _, operator = await auth_broker.apikeys.create(Actor(), KeyRequest("ops", ["operator"]))
    return {"admin": admin, "operator": operator}


@pytest.fixture
async def http(auth_settings: Settings, auth_broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(auth_settings, broker=auth_broker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        yield c


def as_(key: str, **headers: str) -> dict[str, str]:
    return {"X-API-Key": key, **headers}


async def records(broker: Broker, **kw: Any) -> list[Any]:
    assert broker.audit is not None
    return await broker.audit.query(Actor(), AuditFilter(**kw))


async def test_a_change_is_recorded_with_who_and_what(
        http: httpx.AsyncClient, auth_broker: Broker, keys: dict[str, str]) -> None:
    op = as_(keys["operator"], **{"X-Request-Id": "req-42", "NGSILD-Tenant": "city"})
    r = await http.post(E, json={"id": CAR, "type": "Car", "speed": {"type": "Property",
                                                                     "value": 1}}, headers=op)
    assert r.status_code == 201, r.text
    r = await http.patch(f"{E}/{CAR}/attrs", json={"speed": {"type": "Property", "value": 2}},
                         headers=op)
    assert r.status_code == 204, r.text
    created, patched = await records(auth_broker, tenants=["city"])
    assert created.principal.startswith("apikey:") and created.principal.endswith(":ops")
    assert (created.roles, created.client, created.request_id, created.decision) == (
        ["operator"], "127.0.0.1", "req-42", "allow")
    assert created.operation.startswith("EntityService.")
    assert (created.entity_ids, created.entity_count) == ([CAR], 1)
    assert patched.attributes == [SPEED] and patched.entity_ids == [CAR]


async def test_refusals_are_recorded_and_admin_only(
        http: httpx.AsyncClient, auth_broker: Broker, keys: dict[str, str]) -> None:
    assert (await http.get("/admin/audit")).status_code == 401
    r = await http.get("/admin/audit", headers=as_(keys["operator"]))
    assert r.status_code == 403 and r.json()["type"] == "urn:urbis:problem:Forbidden"
    assert (await http.get("/admin/audit/verify",
                           headers=as_(keys["operator"]))).status_code == 403
    anonymous, query, verify = await records(auth_broker, decision="deny")
    assert (anonymous.principal, anonymous.roles) == ("anonymous", ["public"])
    assert "credentials" in (anonymous.reason or "")
    assert query.operation == "AuditService.query" and "audit.read" in (query.reason or "")
    assert query.principal.endswith(":ops") and verify.operation == "AuditService.verify"
    r = await http.get("/admin/audit", params={"decision": "deny"}, headers=as_(keys["admin"]))
    assert r.status_code == 200
    assert [x["operation"] for x in r.json()] == ["AuditService.query", "AuditService.query",
                                                  "AuditService.verify"]


async def test_admin_audit_filters_and_export(
        http: httpx.AsyncClient, auth_broker: Broker, keys: dict[str, str]) -> None:
    admin = as_(keys["admin"])
    for n in range(5):
        await http.post(E, json={"id": f"urn:ngsi-ld:Car:{n}", "type": "Car"},
                        headers=as_(keys["operator"]))
    # the first record is the operator key's creation (ApiKeyService.create)
    page = (await http.get("/admin/audit", params={"limit": 2, "offset": 2},
                           headers=admin)).json()
    assert [x["entityIds"] for x in page] == [["urn:ngsi-ld:Car:1"], ["urn:ngsi-ld:Car:2"]]
    one = (await http.get("/admin/audit", params={"entityId": "urn:ngsi-ld:Car:3"},
                          headers=admin)).json()
    assert len(one) == 1 and one[0]["requestId"]
    r = await http.get("/admin/audit", params={"since": "2000-01-01T00:00:00Z", "offset": 3},
                       headers={**admin, "Accept": "application/x-ndjson"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(x) for x in r.content.splitlines()]
    assert [x["entityIds"][0] for x in lines] == [f"urn:ngsi-ld:Car:{n}" for n in (2, 3, 4)]
    future = (await http.get("/admin/audit", params={"since": "2999-01-01T00:00:00Z"},
                             headers=admin)).json()
    assert future == []


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "5000"}, {"limit": "1; DROP TABLE audit_log"}, {"offset": "-1"},
    {"since": "yesterday"}, {"until": "2026-01-01' OR '1'='1"}, {"decision": "maybe"},
    {"tenant": ""}, {"principal": "x" * 2000}, {"sort": "seq"}, {"entityId": "a\x00b"},
])
async def test_bad_filters_are_400(http: httpx.AsyncClient, keys: dict[str, str],
                                   params: dict[str, str]) -> None:
    r = await http.get("/admin/audit", params=params, headers=as_(keys["admin"]))
    assert r.status_code == 400, (params, r.text)
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("value", ["' OR '1'='1", "x'); DELETE FROM audit_log; --", "%", "*",
                                   "$1", "?"])
async def test_injection_in_filters_matches_nothing(
        http: httpx.AsyncClient, auth_broker: Broker, keys: dict[str, str], value: str) -> None:
    await http.post(E, json={"id": CAR, "type": "Car"}, headers=as_(keys["operator"]))
    for name in ("tenant", "principal", "operation", "entityId"):
        r = await http.get("/admin/audit", params={name: value}, headers=as_(keys["admin"]))
        assert r.status_code == 200 and r.json() == [], (name, value)
    assert len(await records(auth_broker)) == 2  # the key's creation and the entity's


async def verify(broker: Broker) -> Any:
    assert broker.audit is not None
    await broker.audit.seal()
    return await broker.audit.verify(Actor())


async def changes(broker: Broker, n: int) -> None:
    for i in range(n):
        await broker.entities.create(Actor(), {"id": f"urn:ngsi-ld:Car:{i}", "type": "Car"},
                                     await broker.contexts.term_map(None))


async def test_chain_verifies_and_tampering_is_found(broker: Broker, settings: Settings,
                                                     backend: str) -> None:
    await changes(broker, 6)
    ok = await verify(broker)
    assert ok.ok and ok.checked == 6 and ok.state.head_pos == 6
    await raw(settings.store, DROP_GUARDS[backend])
    await raw(settings.store, "UPDATE audit_log SET principal = 'someone-else' "
                              "WHERE chain_pos = 3")
    bad = await verify(broker)
    assert not bad.ok and bad.position == 3 and "changed" in (bad.problem or "")


async def test_deleted_records_are_found(broker: Broker, settings: Settings,
                                         backend: str) -> None:
    await changes(broker, 6)
    assert (await verify(broker)).ok
    await raw(settings.store, DROP_GUARDS[backend])
    await raw(settings.store, "DELETE FROM audit_log WHERE chain_pos = 4")
    bad = await verify(broker)
    assert not bad.ok and bad.position == 4 and "missing" in (bad.problem or "")
    await raw(settings.store, "DELETE FROM audit_log WHERE chain_pos >= 4")  # the tail too
    bad = await verify(broker)
    assert not bad.ok and bad.position == 4


async def test_retention_purge_keeps_the_chain_verifiable(broker: Broker, settings: Settings,
                                                          backend: str) -> None:
    await changes(broker, 5)
    assert broker.audit is not None
    await broker.audit.seal()
    await raw(settings.store, DROP_GUARDS[backend])  # age the first three records
    await raw(settings.store, "UPDATE audit_log SET at = '2000-01-01T00:00:00.000000Z' "
                              "WHERE chain_pos <= 3")
    ok = await broker.audit.verify(Actor())
    assert not ok.ok  # changing `at` is tampering too
    await raw(settings.store, "UPDATE audit_log SET at = '2000-01-01T00:00:00.000000Z', "
                              "chain_pos = NULL, hash = NULL")
    # re-seal from scratch, as if these records had always been old
    await raw(settings.store, "UPDATE audit_chain SET head_pos = 0, head_hash = ''")
    await raw(settings.store, "UPDATE audit_log SET at = '2099-01-01T00:00:00.000000Z' "
                              "WHERE seq > 3")
    await broker.audit.seal()
    assert (await broker.audit.verify(Actor())).ok
    assert await broker.audit.purge() == 3
    after = await broker.audit.verify(Actor())
    assert after.ok and after.checked == 2 and after.state.anchor_pos == 3


async def test_audit_off_records_nothing(settings: Settings) -> None:
    quiet = await build_broker(replace(settings, audit=False))
    try:
        await changes(quiet, 2)
        assert await records(quiet) == []
    finally:
        await quiet.close()


def test_cli_export_and_verify(settings: Settings, tmp_path: Path, backend: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    store = ["--store", settings.store]
    assert main(["apikey", "create", *store, "--name", "x", "--role", "operator"]) == 0
    assert main(["audit", "verify", *store]) == 0
    assert "audit log OK" in capsys.readouterr().out
    out = tmp_path / "audit.ndjson"
    assert main(["audit", "export", *store, "-o", str(out)]) == 0
    assert main(["audit", "export", *store, "--since", "nonsense"]) == 2
    assert main(["audit", "verify", "--json", *store]) == 0
    assert orjson.loads(capsys.readouterr().out)["ok"] is True
