"""/ngsi-ld/v1/csourceRegistrations through HTTP (ETSI GS CIM 009 V1.8.1 clauses 5.9, 5.10)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from urbis.broker.container import Broker
from urbis.context.actor import Actor
from urbis.context.jsonld import CORE_CONTEXT_URL

R = "/ngsi-ld/v1/csourceRegistrations"
E = "/ngsi-ld/v1/entities"
PROBLEM = "application/problem+json"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
EX = "https://example.org/city/"
USER_CONTEXT = {"ex": EX, "Car": "ex:Car", "Bus": "ex:Bus", "speed": "ex:speed",
                "brand": "ex:brand", "owner": "ex:owner", "provider": "ex:provider"}
JSON_LD = "application/ld+json"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"


def minimal(**extra: Any) -> dict[str, Any]:
    """The smallest valid registration (of Building entities)."""
    body: dict[str, Any] = {"type": "ContextSourceRegistration",
                            "information": [{"entities": [{"type": "Building"}]}],
                            "endpoint": "http://localhost:1026"}
    body.update(extra)
    return body


def full(reg_id: str = "urn:ngsi-ld:ContextSourceRegistration:full") -> dict[str, Any]:
    """A registration with every member, in terms of USER_CONTEXT."""
    return {
        "id": reg_id, "type": "ContextSourceRegistration", "registrationName": "cars",
        "description": "the bus company's vehicles",
        "information": [
            {"entities": [{"id": "urn:ngsi-ld:Car:1", "type": "Car"},
                          {"idPattern": "^urn:ngsi-ld:Bus:", "type": ["Bus", "Car"]}],
             "propertyNames": ["speed", "brand"], "relationshipNames": ["owner"]},
            {"propertyNames": ["speed"]}],
        "endpoint": "https://buses.example.org/ngsi-ld", "mode": "inclusive",
        "tenant": "transport",
        "observationInterval": {"startAt": "2020-01-01T00:00:00Z", "endAt": "2030-01-01T00:00:00Z"},
        "managementInterval": {"startAt": "2020-01-01T00:00:00Z"},
        "location": {"type": "Point", "coordinates": [-3.7, 40.4]},
        "observationSpace": {"type": "Point", "coordinates": [-3.7, 40.4]},
        "operationSpace": {"type": "Point", "coordinates": [-3.7, 40.4]},
        "expiresAt": "2099-12-31T23:59:59Z",
        "contextSourceInfo": [{"key": "Authorization", "value": "Bearer abc"}],
        "scope": "/Madrid/Centro", "operations": ["federationOps", "updateOps"],
        "refreshRate": "PT10S",
        "management": {"localOnly": True, "cacheDuration": "PT1M", "timeout": 1000,
                       "cooldown": 5000},
        "provider": "EMT",
    }


def link(url: str) -> dict[str, str]:
    """A JSON-LD context Link header."""
    return {"Link": f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; '
                    'type="application/ld+json"'}


def problem(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """Assert a problem+json response of a type."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["type"] == ERR + kind, body
    return body


async def user_context(broker: Broker) -> str:
    """The URL of a hosted @context defining USER_CONTEXT."""
    return (await broker.contexts.add_hosted(Actor(), {"@context": USER_CONTEXT})).url


async def ids(client: httpx.AsyncClient, **params: str) -> list[str]:
    """The ids a query returns."""
    r = await client.get(R, params=params)
    assert r.status_code == 200, r.text
    return [reg["id"] for reg in r.json()]


async def test_create_and_retrieve_minimal(client: httpx.AsyncClient) -> None:
    r = await client.post(R, json=minimal(id="urn:ngsi-ld:ContextSourceRegistration:1"))
    assert r.status_code == 201 and r.text == ""
    assert r.headers["location"] == f"{R}/urn:ngsi-ld:ContextSourceRegistration:1"
    r = await client.get(f"{R}/urn:ngsi-ld:ContextSourceRegistration:1")
    assert r.status_code == 200
    assert r.json() == {"id": "urn:ngsi-ld:ContextSourceRegistration:1",
                        "type": "ContextSourceRegistration",
                        "information": [{"entities": [{"type": "Building"}]}],
                        "endpoint": "http://localhost:1026", "mode": "inclusive"}
    assert CORE_CONTEXT_URL in r.headers["link"]


async def test_generated_id_and_sys_attrs(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{R}/", json=minimal())
    assert r.status_code == 201
    location = r.headers["location"]
    assert location.startswith(f"{R}/urn:ngsi-ld:ContextSourceRegistration:")
    body = (await client.get(location, params={"options": "sysAttrs"})).json()
    assert body["id"] == location.rsplit("/", 1)[1]
    assert body["createdAt"] == body["modifiedAt"]
    assert "createdAt" not in (await client.get(location)).json()


async def test_every_member_round_trips_with_a_user_context(
        client: httpx.AsyncClient, broker: Broker) -> None:
    url = await user_context(broker)
    r = await client.post(R, json=full(), headers=link(url))
    assert r.status_code == 201, r.text
    r = await client.get(f"{R}/urn:ngsi-ld:ContextSourceRegistration:full", headers=link(url))
    assert r.json() == full()
    assert url in r.headers["link"]
    expanded = (await client.get(f"{R}/urn:ngsi-ld:ContextSourceRegistration:full")).json()
    assert expanded["information"][0]["entities"][0]["type"] == EX + "Car"
    assert expanded["information"][0]["propertyNames"] == [EX + "speed", EX + "brand"]
    assert expanded[EX + "provider"] == "EMT"
    r = await client.get(f"{R}/urn:ngsi-ld:ContextSourceRegistration:full",
                         headers={**link(url), "Accept": JSON_LD})
    assert r.json()["@context"] == url and r.json()["provider"] == "EMT"


async def test_inline_context_becomes_an_implicitly_created_one(
        client: httpx.AsyncClient, broker: Broker) -> None:
    body = {**full(), "@context": USER_CONTEXT}
    r = await client.post(R, content=json.dumps(body), headers={"content-type": JSON_LD})
    assert r.status_code == 201, r.text
    assert broker.registrations is not None
    stored = await broker.registrations.get(Actor(), full()["id"])
    implicit = await client.get("/ngsi-ld/v1/jsonldContexts",
                                params={"kind": "ImplicitlyCreated"})
    assert implicit.json() == [stored.context]
    assert stored.information[0].property_names == [EX + "speed", EX + "brand"]


async def test_query_by_information(client: httpx.AsyncClient, broker: Broker) -> None:
    url = await user_context(broker)
    for n, info in enumerate([
            {"entities": [{"type": "Car"}], "propertyNames": ["speed"]},
            {"entities": [{"type": "Bus", "id": "urn:ngsi-ld:Bus:1"}]},
            {"entities": [{"type": "Car", "idPattern": "Car:[0-4]$"}],
             "relationshipNames": ["owner"]},
            {"propertyNames": ["brand"]}], 1):
        r = await client.post(R, json=minimal(id=f"urn:r:{n}", information=[info]),
                              headers=link(url))
        assert r.status_code == 201, r.text
    ctx = link(url)

    async def query(**params: str) -> list[str]:
        r = await client.get(R, params=params, headers=ctx)
        assert r.status_code == 200, r.text
        return [reg["id"] for reg in r.json()]

    assert await query() == ["urn:r:1", "urn:r:2", "urn:r:3", "urn:r:4"]
    assert await query(type="Car") == ["urn:r:1", "urn:r:3", "urn:r:4"]
    assert await query(type="Bus,Car", attrs="owner") == ["urn:r:2", "urn:r:3"]
    assert await query(id="urn:ngsi-ld:Car:3") == ["urn:r:1", "urn:r:3", "urn:r:4"]
    assert await query(id="urn:ngsi-ld:Car:7", type="Car") == ["urn:r:1", "urn:r:4"]
    assert await query(idPattern="Bus") == ["urn:r:1", "urn:r:2", "urn:r:3", "urn:r:4"]
    assert await query(idPattern="Bus", type="Bus") == ["urn:r:2", "urn:r:4"]
    assert await query(attrs="speed") == ["urn:r:1", "urn:r:2"]
    assert await query(attrs="brand,speed", type="Car") == ["urn:r:1", "urn:r:4"]
    assert await query(type="(Car;Bus)") == ["urn:r:4"]
    r = await client.get(R, params={"type": "Car", "limit": "1", "count": "true"}, headers=ctx)
    assert [reg["id"] for reg in r.json()] == ["urn:r:1"]
    assert r.headers["NGSILD-Results-Count"] == "3"
    assert 'rel="next"' in r.headers["link"] and "offset=1" in r.headers["link"]
    r = await client.get(R, params={"type": "Car", "limit": "1", "offset": "2"}, headers=ctx)
    assert [reg["id"] for reg in r.json()] == ["urn:r:4"]
    assert 'rel="prev"' in r.headers["link"]


async def test_query_by_properties_geometry_and_scope(client: httpx.AsyncClient,
                                                      broker: Broker) -> None:
    url = await user_context(broker)
    await client.post(R, json=minimal(id="urn:r:1", provider="EMT", scope="/Madrid/Centro",
                                      location={"type": "Point", "coordinates": [-3.70, 40.41]}),
                      headers=link(url))
    await client.post(R, json=minimal(id="urn:r:2", provider="ALSA", mode="auxiliary",
                                      location={"type": "Point", "coordinates": [2.17, 41.38]},
                                      operations=["retrieveOps"]), headers=link(url))
    ctx = link(url)

    async def query(**params: str) -> list[str]:
        r = await client.get(R, params=params, headers=ctx)
        assert r.status_code == 200, r.text
        return [reg["id"] for reg in r.json()]

    assert await query(q='provider=="EMT"') == ["urn:r:1"]
    assert await query(q='provider~="A.*"') == ["urn:r:2"]
    assert await query(csf='mode=="auxiliary"') == ["urn:r:2"]
    assert await query(csf='endpoint=="http://localhost:1026"', q="provider") == [
        "urn:r:1", "urn:r:2"]
    assert await query(georel="near;maxDistance==5000", geometry="Point",
                       coordinates="[-3.7,40.4]") == ["urn:r:1"]
    assert await query(georel="within", geometry="Polygon",
                       coordinates="[[[2,41],[3,41],[3,42],[2,42],[2,41]]]") == ["urn:r:2"]
    assert await query(scopeQ="/Madrid/#") == ["urn:r:1"]
    r = await client.get(R, params={"q": 'provider=="EMT"', "count": "true", "limit": "0"},
                         headers=ctx)
    assert r.json() == [] and r.headers["NGSILD-Results-Count"] == "1"


async def test_bad_query_parameters(client: httpx.AsyncClient) -> None:
    for params in ({"limit": "x"}, {"limit": "0"}, {"offset": "-1"}, {"q": "a>"},
                   {"csf": "=="}, {"type": "A;;B"}, {"idPattern": "("}, {"id": "not a uri"},
                   {"attrs": "a b"}, {"georel": "near"}, {"scopeQ": "/a//b"},
                   {"options": "bogus"}):
        problem(await client.get(R, params=params), 400, "BadRequestData")
    problem(await client.get(R, params={"limit": "5000"}), 403, "TooManyResults")
    problem(await client.get(R, params=[("type", "A"), ("type", "B")]), 400, "BadRequestData")
    assert (await client.get(R, headers={"Accept": "text/plain"})).status_code == 406


async def test_patch_merges(client: httpx.AsyncClient, broker: Broker) -> None:
    url = await user_context(broker)
    await client.post(R, json=full(), headers=link(url))
    rid = f"{R}/urn:ngsi-ld:ContextSourceRegistration:full"
    fragment = {"description": "new", "registrationName": None, "provider": "ALSA",
                "management": {"timeout": 10}, "information": [{"entities": [{"type": "Bus"}]}]}
    r = await client.patch(rid, json=fragment, headers=link(url))
    assert r.status_code == 204, r.text
    body = (await client.get(rid, headers=link(url), params={"options": "sysAttrs"})).json()
    assert body["description"] == "new" and "registrationName" not in body
    assert body["provider"] == "ALSA" and body["management"] == {"timeout": 10}
    assert body["information"] == [{"entities": [{"type": "Bus"}]}]
    assert body["endpoint"] == full()["endpoint"] and body["modifiedAt"] > body["createdAt"]
    r = await client.patch(rid, json={"provider": None},
                           headers={**link(url), "content-type": "application/merge-patch+json"})
    assert r.status_code == 204
    assert "provider" not in (await client.get(rid, headers=link(url))).json()


async def test_refused_patches_change_nothing(client: httpx.AsyncClient) -> None:
    await client.post(R, json=minimal(id="urn:r:1"))
    before = (await client.get(f"{R}/urn:r:1")).json()
    for fragment in ({"endpoint": None}, {"information": None}, {"information": []},
                     {"type": "Other"}, {"id": "urn:r:2"}, {"mode": "exclusive"},
                     {"endpoint": "nowhere"}, {"expiresAt": "2000-01-01T00:00:00Z"},
                     {"operations": ["teleport"]}, [1]):
        problem(await client.patch(f"{R}/urn:r:1", json=fragment), 400, "BadRequestData")
        assert (await client.get(f"{R}/urn:r:1")).json() == before, fragment
    problem(await client.patch(f"{R}/urn:r:404", json={}), 404, "ResourceNotFound")
    problem(await client.patch(f"{R}/not-a-uri", json={}), 400, "BadRequestData")
    assert (await client.patch(f"{R}/", json={})).status_code == 405


async def test_delete(client: httpx.AsyncClient) -> None:
    await client.post(R, json=minimal(id="urn:r:1"))
    assert (await client.delete(f"{R}/urn:r:1")).status_code == 204
    problem(await client.delete(f"{R}/urn:r:1"), 404, "ResourceNotFound")
    problem(await client.get(f"{R}/urn:r:1"), 404, "ResourceNotFound")
    problem(await client.get(f"{R}/bad id"), 400, "BadRequestData")
    assert (await client.delete(f"{R}/")).status_code == 405
    assert (await client.post(R, json=minimal(id="urn:r:1"))).status_code == 201


async def test_duplicate_id_is_already_exists(client: httpx.AsyncClient) -> None:
    assert (await client.post(R, json=minimal(id="urn:r:1"))).status_code == 201
    problem(await client.post(R, json=minimal(id="urn:r:1")), 409, "AlreadyExists")
    assert await ids(client) == ["urn:r:1"]


def exclusive(reg_id: str, entity: str = "urn:ngsi-ld:Car:1", attr: str = "speed"
              ) -> dict[str, Any]:
    """An exclusive registration of one attribute of one entity."""
    return minimal(id=reg_id, mode="exclusive", information=[
        {"entities": [{"type": "Car", "id": entity}], "propertyNames": [attr]}])


async def test_overlapping_proxied_registrations_conflict(client: httpx.AsyncClient) -> None:
    assert (await client.post(R, json=exclusive("urn:r:1"))).status_code == 201
    problem(await client.post(R, json=exclusive("urn:r:2")), 409, "Conflict")
    redirect = minimal(id="urn:r:3", mode="redirect",
                       information=[{"entities": [{"type": "Car"}]}])
    problem(await client.post(R, json=redirect), 409, "Conflict")
    assert (await client.post(R, json=exclusive("urn:r:4", attr="brand"))).status_code == 201
    problem(await client.patch(f"{R}/urn:r:4", json={"information": exclusive("x")[
        "information"]}), 409, "Conflict")
    assert (await client.post(R, json=minimal(id="urn:r:5", information=exclusive("x")[
        "information"]))).status_code == 201  # inclusive
    assert await ids(client) == ["urn:r:1", "urn:r:4", "urn:r:5"]
    other = {"NGSILD-Tenant": "elsewhere"}
    assert (await client.post(R, json=exclusive("urn:r:2"), headers=other)).status_code == 201


async def test_proxied_registrations_over_local_data_conflict(client: httpx.AsyncClient
                                                              ) -> None:
    car = {"id": "urn:ngsi-ld:Car:1", "type": "Car",
           "speed": {"type": "Property", "value": 10}}
    assert (await client.post(E, json=car)).status_code == 201
    problem(await client.post(R, json=exclusive("urn:r:1")), 409, "Conflict")
    assert (await client.post(R, json=exclusive("urn:r:2", attr="brand"))).status_code == 201
    problem(await client.post(R, json=minimal(id="urn:r:3", mode="redirect", information=[
        {"entities": [{"type": "Car"}]}])), 409, "Conflict")
    assert (await client.post(R, json=minimal(id="urn:r:4", mode="redirect", information=[
        {"entities": [{"type": "Bus"}]}]))).status_code == 201


BAD: dict[str, Any] = {
    "not an object": [minimal()],
    "no type": {k: v for k, v in minimal().items() if k != "type"},
    "wrong type": minimal(type="Registration"),
    "id not a URI": minimal(id="not a uri"),
    "no information": {k: v for k, v in minimal().items() if k != "information"},
    "no endpoint": {k: v for k, v in minimal().items() if k != "endpoint"},
    "bad endpoint": minimal(endpoint="mqtt://broker/x"),
    "entity without type": minimal(information=[{"entities": [{"id": "urn:x:1"}]}]),
    "bad mode": minimal(mode="shared"),
    "bad operations": minimal(operations="federationOps"),
    "exclusive by type": minimal(mode="exclusive"),
    "auxiliary writes": minimal(mode="auxiliary", operations=["redirectionOps"]),
    "bad geometry": minimal(location={"type": "Circle", "coordinates": [0, 0]}),
    "bad expiry": minimal(expiresAt="2001-01-01T00:00:00Z"),
    "bad management": minimal(management={"cooldown": "1s"}),
}


async def test_bad_payloads_are_400_and_store_nothing(client: httpx.AsyncClient) -> None:
    for what, body in BAD.items():
        problem(await client.post(R, json=body), 400, "BadRequestData"), what
    problem(await client.post(R, content=b"{", headers={"content-type": "application/json"}),
            400, "InvalidRequest")
    r = await client.post(R, content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert await ids(client) == []


async def test_tenants_are_apart(client: httpx.AsyncClient) -> None:
    city = {"NGSILD-Tenant": "city"}
    assert (await client.post(R, json=minimal(id="urn:r:1"), headers=city)).status_code == 201
    assert await ids(client) == []
    r = await client.get(R, headers=city)
    assert [reg["id"] for reg in r.json()] == ["urn:r:1"]
    problem(await client.get(f"{R}/urn:r:1"), 404, "ResourceNotFound")
    problem(await client.get(R, headers={"NGSILD-Tenant": "nobody"}), 404, "NonexistentTenant")
    problem(await client.get(f"{R}/urn:r:1", headers={"NGSILD-Tenant": "nobody"}), 404,
            "NonexistentTenant")


async def test_matching_for_distributed_operations(client: httpx.AsyncClient,
                                                   broker: Broker) -> None:
    await client.post(R, json=minimal(id="urn:r:1", information=[
        {"entities": [{"type": "Car"}], "propertyNames": ["speed"]}]))
    await client.post(R, json=minimal(id="urn:r:2", information=[
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:9"}]}], operations=["updateOps"]))
    service = broker.registrations
    assert service is not None
    car, speed = DEFAULT + "Car", DEFAULT + "speed"
    found = await service.matching("", "urn:ngsi-ld:Car:9", [car], None, "retrieveEntity")
    assert [r.id for r in found] == ["urn:r:1"]
    found = await service.matching("", "urn:ngsi-ld:Car:9", [car], [speed], "updateAttrs")
    assert [r.id for r in found] == ["urn:r:2"]
    assert await service.matching("other", None, None, None, "queryEntity") == []
    await client.delete(f"{R}/urn:r:1")  # the cache follows the writes
    assert await service.matching("", None, [car], None, "queryEntity") == []


async def test_writes_are_audited(client: httpx.AsyncClient, broker: Broker) -> None:
    from urbis.security.audit import AuditFilter

    await client.post(R, json=minimal(id="urn:r:1"))
    await client.patch(f"{R}/urn:r:1", json={"description": "d"})
    await client.delete(f"{R}/urn:r:1")
    assert broker.audit is not None
    records = await broker.audit.query(Actor(), AuditFilter())
    operations = [r.operation for r in records if r.operation.startswith("Registration")]
    assert operations == ["RegistrationService.create", "RegistrationService.update",
                          "RegistrationService.delete"]
