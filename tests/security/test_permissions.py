"""Authorisation: every service operation declares a permission; the role x operation matrix."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields, replace
from typing import Any

import httpx
import pytest

from urbis.api.app import create_app
from urbis.broker.container import Broker, build_broker
from urbis.context.actor import Actor
from urbis.security.apikeys import KeyRequest
from urbis.security.policy import public_operations
from urbis.settings import Settings

E = "/ngsi-ld/v1/entities"
T = "/ngsi-ld/v1/temporal/entities"
SPOT = "urn:ngsi-ld:ParkingSpot:1"
AIR = "urn:ngsi-ld:AirQualityObserved:1"
DEVICE_SPOT = "urn:ngsi-ld:ParkingSpot:dev-1"
NOT_A_SERVICE = {"stores", "paging"}


async def test_every_service_operation_declares_a_permission(settings: Settings) -> None:
    broker = await build_broker(settings)
    try:
        missing = []
        checked = 0
        for f in fields(broker):
            service = getattr(broker, f.name)
            if f.name in NOT_A_SERVICE or service is None:
                continue
            for name in public_operations(service):
                checked += 1
                member = inspect.getattr_static(type(service), name)
                if not hasattr(member, "__permission__"):
                    missing.append(f"{type(service).__name__}.{name}")
        assert checked > 40
        assert not missing, f"operations without a declared permission: {missing}"
    finally:
        await broker.close()


@dataclass(frozen=True)
class Op:
    """One operation of the matrix and the roles that may do it."""

    name: str
    method: str
    path: str
    allowed: frozenset[str]
    body: Any = None
    params: dict[str, str] | None = None
    hidden: bool = False  # denied as 404: the caller may not learn the entity exists


EVERYONE = frozenset({"admin", "operator", "analyst", "device", "public"})
STAFF = frozenset({"admin", "operator"})
OPS = [
    Op("query parking (a published type)", "GET", E, EVERYONE - {"device"},
       params={"type": "ParkingSpot"}),
    Op("query air quality (not published)", "GET", E, STAFF | {"analyst"},
       params={"type": "AirQualityObserved"}),
    Op("query without type", "GET", E, STAFF, params={"q": "status==\"free\""}),
    Op("retrieve a parking spot", "GET", f"{E}/{SPOT}", EVERYONE - {"device"}, hidden=True),
    Op("retrieve air quality", "GET", f"{E}/{AIR}", STAFF | {"analyst"}, hidden=True),
    Op("retrieve own spot", "GET", f"{E}/{DEVICE_SPOT}", EVERYONE),
    Op("create an entity", "POST", E, STAFF,
       body={"id": "urn:ngsi-ld:ParkingSpot:new", "type": "ParkingSpot"}),
    Op("patch own spot", "PATCH", f"{E}/{DEVICE_SPOT}/attrs/status", STAFF | {"device"},
       body={"value": "occupied"}),
    Op("patch another spot", "PATCH", f"{E}/{SPOT}/attrs/status", STAFF,
       body={"value": "occupied"}),
    Op("batch upsert own spot", "POST", "/ngsi-ld/v1/entityOperations/upsert",
       STAFF | {"device"}, body=[{"id": DEVICE_SPOT, "type": "ParkingSpot",
                                  "status": {"type": "Property", "value": "free"}}]),
    Op("purge a type", "DELETE", E, STAFF, params={"type": "Nothing"}),
    Op("list types", "GET", "/ngsi-ld/v1/types", STAFF | {"analyst"}),
    Op("temporal query", "GET", T, EVERYONE - {"device"},
       params={"type": "ParkingSpot", "timerel": "after", "timeAt": "2020-01-01T00:00:00Z"}),
    Op("temporal air quality", "GET", T, STAFF | {"analyst"},
       params={"type": "AirQualityObserved", "timerel": "after",
               "timeAt": "2020-01-01T00:00:00Z"}),
    Op("temporal without type", "GET", T, STAFF,
       params={"q": "no2>1", "timerel": "after", "timeAt": "2020-01-01T00:00:00Z"}),
    Op("list subscriptions", "GET", "/ngsi-ld/v1/subscriptions", STAFF | {"analyst"}),
    Op("subscribe to air quality", "POST", "/ngsi-ld/v1/subscriptions", STAFF | {"analyst"},
       body={"type": "Subscription", "entities": [{"type": "AirQualityObserved"}],
             "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}),
    Op("list registrations", "GET", "/ngsi-ld/v1/csourceRegistrations", STAFF),
    Op("register a context source", "POST", "/ngsi-ld/v1/csourceRegistrations", STAFF,
       body={"type": "ContextSourceRegistration", "endpoint": "http://127.0.0.1:9/",
             "information": [{"entities": [{"type": "Bus"}]}]}),
    Op("list registration subscriptions", "GET", "/ngsi-ld/v1/csourceSubscriptions", STAFF),
    Op("subscribe to registrations", "POST", "/ngsi-ld/v1/csourceSubscriptions", STAFF,
       body={"type": "Subscription", "entities": [{"type": "AirQualityObserved"}],
             "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}),
    Op("list @contexts", "GET", "/ngsi-ld/v1/jsonldContexts", EVERYONE),
    Op("add an @context", "POST", "/ngsi-ld/v1/jsonldContexts", STAFF,
       body={"@context": {"x": "http://example.org/x"}}),
    Op("list API keys", "GET", "/admin/apikeys", frozenset({"admin"})),
    Op("metrics", "GET", "/metrics", STAFF),
    Op("feed status", "GET", "/admin/feeds", STAFF),
    Op("run a feed", "POST", "/admin/feeds/none/run", STAFF),  # 404 for staff: allowed
]


@dataclass
class World:
    client: httpx.AsyncClient
    keys: dict[str, str]


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    secured = replace(settings, auth=True, public_types="ParkingSpot").validate()
    broker = await build_broker(secured)
    try:
        await _seed(broker)
        keys = {}
        assert broker.apikeys is not None
        for role, extra in [("admin", {}), ("operator", {}),
                            ("analyst", {"types": ["AirQualityObserved", "ParkingSpot"]}),
                            ("device", {"entities": [DEVICE_SPOT]})]:
            _, keys[role] = await broker.apikeys.create(
                Actor(), KeyRequest(role, [role], tenants=["city"], **extra))
        _, keys["other-tenant admin"] = await broker.apikeys.create(
            Actor(), KeyRequest("elsewhere", ["admin"], tenants=["elsewhere"]))
        app = create_app(secured, broker=broker)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
            yield World(c, keys)
    finally:
        await broker.close()


async def _seed(broker: Broker) -> None:
    from urbis.context.jsonld import core_term_map

    admin = Actor(tenant="city")
    for body in ({"id": SPOT, "type": "ParkingSpot", "status": {"type": "Property",
                                                                 "value": "free"}},
                 {"id": DEVICE_SPOT, "type": "ParkingSpot",
                  "status": {"type": "Property", "value": "free"}},
                 {"id": AIR, "type": "AirQualityObserved",
                  "no2": {"type": "Property", "value": 40}}):
        await broker.entities.create(admin, body, core_term_map())


async def call(world: World, op: Op, role: str, tenant: str = "city") -> httpx.Response:
    headers = {"NGSILD-Tenant": tenant}
    if role != "public":
        headers["X-API-Key"] = world.keys[role]
    if op.path.startswith("/admin") or op.path == "/metrics":
        headers.pop("NGSILD-Tenant")
    return await world.client.request(op.method, op.path, params=op.params, json=op.body,
                                      headers=headers)


async def test_role_operation_matrix(world: World) -> None:
    wrong = []
    for op in OPS:
        for role in sorted(EVERYONE):
            r = await call(world, op, role)
            denied = r.status_code in (401, 403) or (op.hidden and r.status_code == 404)
            if denied == (role in op.allowed):
                wrong.append(f"{op.name} as {role}: {r.status_code} {r.text[:120]}")
            if op.hidden and r.status_code == 404:
                continue
            if denied and role == "public":
                assert r.status_code == 401 and "www-authenticate" in r.headers
            elif denied:
                assert r.status_code == 403, (op.name, role, r.status_code)
                assert r.json()["type"] == "urn:urbis:problem:Forbidden"
    assert not wrong, "\n".join(wrong)


async def test_cross_tenant_is_always_denied(world: World) -> None:
    for op in OPS:
        if op.path.startswith("/admin") or op.path == "/metrics" or "jsonldContexts" in op.path:
            continue  # not tenant data
        if op.hidden:
            continue
        r = await call(world, op, "other-tenant admin", tenant="city")
        assert r.status_code == 403, (op.name, r.status_code, r.text[:200])
        r = await call(world, op, "operator", tenant="elsewhere")
        assert r.status_code == 403, (op.name, r.status_code)


async def test_device_batch_for_foreign_ids_fails_per_entity(world: World) -> None:
    r = await world.client.post(
        "/ngsi-ld/v1/entityOperations/upsert",
        headers={"X-API-Key": world.keys["device"], "NGSILD-Tenant": "city"},
        json=[{"id": DEVICE_SPOT, "type": "ParkingSpot"},
              {"id": SPOT, "type": "ParkingSpot"}])
    assert r.status_code == 207
    errors = r.json()["errors"]
    assert [e["entityId"] for e in errors] == [SPOT]
    assert errors[0]["error"]["status"] == 403


async def test_sensitive_attributes_are_hidden_and_their_reads_audited(
        settings: Settings) -> None:
    secured = replace(settings, auth=True, sensitive_attributes="ownerName").validate()
    broker = await build_broker(secured)
    try:
        from urbis.context.jsonld import core_term_map

        city = Actor(tenant="city")
        await broker.entities.create(city, {
            "id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle",
            "ownerName": {"type": "Property", "value": "Ana"},
            "speed": {"type": "Property", "value": 30}}, core_term_map())
        assert broker.apikeys is not None
        _, analyst = await broker.apikeys.create(
            Actor(), KeyRequest("a", ["analyst"], tenants=["city"], types=["Vehicle"]))
        _, operator = await broker.apikeys.create(
            Actor(), KeyRequest("o", ["operator"], tenants=["city"]))
        app = create_app(secured, broker=broker)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
            for key, sees in ((analyst, False), (operator, True)):
                headers = {"X-API-Key": key, "NGSILD-Tenant": "city"}
                one = (await c.get(f"{E}/urn:ngsi-ld:Vehicle:1", headers=headers)).json()
                many = (await c.get(E, params={"type": "Vehicle"}, headers=headers)).json()
                assert ("ownerName" in one) is sees and "speed" in one
                assert ("ownerName" in many[0]) is sees
                attrs = (await c.get("/ngsi-ld/v1/attributes", headers=headers)).json()
                names = attrs["attributeList"] if isinstance(attrs, dict) else attrs
                assert any("ownerName" in n for n in names) is sees
        if broker.audit is not None:
            records = await broker.audit.query(Actor(), _everything())
            reads = [r for r in records if "sensitive" in r.operation]
            assert reads and all("operator" in ",".join(r.roles) for r in reads)
    finally:
        await broker.close()


def _everything() -> Any:
    from urbis.security.audit import AuditFilter

    return AuditFilter()


# --- the IoT agent's provisioning API (its own app and port) -----------------------------------


async def test_every_iot_agent_operation_declares_a_permission(settings: Settings) -> None:
    from urbis.agents.iot_agent import build_iot_agent

    broker = await build_broker(settings)
    try:
        agent = build_iot_agent(settings, broker)
        missing, checked = [], 0
        for service in (agent.devices, agent.ingest, agent.dead_letters):
            for name in public_operations(service):
                checked += 1
                if not hasattr(inspect.getattr_static(type(service), name), "__permission__"):
                    missing.append(f"{type(service).__name__}.{name}")
        assert checked >= 12 and not missing, missing
    finally:
        await broker.close()


IOT_OPS = [
    Op("list service groups", "GET", "/iot/services", STAFF),
    Op("create a service group", "POST", "/iot/services", STAFF,
       body={"services": [{"apikey": "perm-k", "entity_type": "Thing"}]}),
    Op("change a service group", "PUT", "/iot/services", STAFF, body={"timestamp": True},
       params={"apikey": "perm-k"}),
    Op("list devices", "GET", "/iot/devices", STAFF),
    Op("create a device", "POST", "/iot/devices", STAFF, body={"devices": [{"device_id": "p1"}]}),
    Op("read a device", "GET", "/iot/devices/p1", STAFF),
    Op("read dead letters", "GET", "/iot/deadletter", STAFF),
    Op("delete a device", "DELETE", "/iot/devices/p1", STAFF),
    Op("delete a service group", "DELETE", "/iot/services", STAFF, params={"apikey": "perm-k"}),
]


async def test_iot_provisioning_role_matrix(settings: Settings) -> None:
    from urbis.agents.iot_agent import build_iot_agent
    from urbis.api.iota.apps import provisioning_app

    secured = replace(settings, auth=True).validate()
    broker = await build_broker(secured)
    try:
        keys = {}
        assert broker.apikeys is not None
        for role in ("admin", "operator", "analyst", "device"):
            extra = {"entities": ["urn:ngsi-ld:Thing:p1"]} if role == "device" else {}
            _, keys[role] = await broker.apikeys.create(
                Actor(), KeyRequest(role, [role], tenants=["city"], **extra))
        _, keys["elsewhere"] = await broker.apikeys.create(
            Actor(), KeyRequest("elsewhere", ["admin"], tenants=["elsewhere"]))
        agent = build_iot_agent(secured, broker)
        app = provisioning_app(secured, broker, agent)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        wrong = []
        async with httpx.AsyncClient(transport=transport, base_url="http://iota.test") as c:
            for op in IOT_OPS:
                for role in ("analyst", "device", "public", "elsewhere", "operator", "admin"):
                    headers = {"fiware-service": "city", "fiware-servicepath": "/"}
                    if role != "public":
                        headers["X-API-Key"] = keys[role]
                    r = await c.request(op.method, op.path, params=op.params, json=op.body,
                                        headers=headers)
                    denied = r.status_code in (401, 403)
                    if denied == (role in op.allowed):
                        wrong.append(f"{op.name} as {role}: {r.status_code} {r.text[:100]}")
                    if denied:  # FIWARE-shaped refusals, with the challenge for anonymous
                        assert r.json()["name"] in ("UNAUTHORIZED", "FORBIDDEN")
                        assert (role == "public") == ("www-authenticate" in r.headers)
            r = await c.get("/iot/devices", headers={"X-API-Key": "urbis_not-a-key"})
            assert r.status_code == 401 and r.json()["name"] == "UNAUTHORIZED"
            assert (await c.get("/health")).status_code == 200  # probes need no credentials
        assert not wrong, "\n".join(wrong)
    finally:
        await broker.close()
