"""/ngsi-ld/v1/subscriptions through HTTP (ETSI GS CIM 009 V1.8.1 clause 5.8, 6.10, 6.11)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from urbis.broker.container import Broker
from urbis.context.actor import Actor
from urbis.context.jsonld import CORE_CONTEXT_URL
from urbis.storage.base import NotificationOutcome

S = "/ngsi-ld/v1/subscriptions"
PROBLEM = "application/problem+json"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
EX = "https://example.org/city/"
USER_CONTEXT = {"ex": EX, "Car": "ex:Car", "Bus": "ex:Bus", "speed": "ex:speed",
                "brand": "ex:brand", "where": "ex:where"}
JSON_LD = "application/ld+json"


def minimal(**extra: Any) -> dict[str, Any]:
    """The smallest valid subscription (ETSI test suite style)."""
    body: dict[str, Any] = {"type": "Subscription", "entities": [{"type": "Building"}],
                            "notification": {"endpoint": {"uri": "http://localhost:1111/n"}}}
    body.update(extra)
    return body


def full(sub_id: str = "urn:ngsi-ld:Subscription:full") -> dict[str, Any]:
    """A subscription with every member urbis knows, in terms of USER_CONTEXT."""
    return {
        "id": sub_id, "type": "Subscription", "subscriptionName": "cars", "description": "d",
        "entities": [{"type": "Car"}, {"id": "urn:ngsi-ld:Bus:1", "type": "Bus"},
                     {"idPattern": "^urn:ngsi-ld:Car:[0-9]+$", "type": "(Car;Bus)|Car"}],
        "watchedAttributes": ["speed", "brand"],
        "notificationTrigger": ["entityCreated", "attributeUpdated"],
        "q": 'speed>50;brand=="seat"|speed.observedAt>2026-01-01T00:00:00Z',
        "geoQ": {"georel": "near;maxDistance==2000", "geometry": "Point",
                 "coordinates": [-3.7, 40.4], "geoproperty": "where"},
        "scopeQ": "/Madrid/#", "csf": "provider==\"x\"", "isActive": True,
        "expiresAt": "2099-12-31T23:59:59Z", "throttling": 5, "lang": "es,en;q=0.5",
        "datasetId": ["urn:ngsi-ld:Dataset:a"], "jsonldContext": CORE_CONTEXT_URL,
        "notification": {
            "attributes": ["speed", "brand"], "format": "concise", "showChanges": True,
            "sysAttrs": True,
            "endpoint": {"uri": "mqtt://user:pw@broker.example.org:1883/city/cars",
                         "accept": JSON_LD, "timeout": 1000, "cooldown": 500,
                         "receiverInfo": [{"key": "X-Token", "value": "abc"}],
                         "notifierInfo": [{"key": "MQTT-Version", "value": "mqtt5.0"},
                                          {"key": "MQTT-QoS", "value": "1"}]},
        },
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


async def count(client: httpx.AsyncClient, **headers: str) -> int:
    """How many subscriptions the tenant has."""
    r = await client.get(S, params={"count": "true", "limit": "0"}, headers=headers)
    assert r.status_code == 200, r.text
    return int(r.headers["NGSILD-Results-Count"])


async def test_create_and_retrieve_minimal(client: httpx.AsyncClient) -> None:
    r = await client.post(S, json=minimal(id="urn:ngsi-ld:Subscription:1"))
    assert r.status_code == 201 and r.text == ""
    assert r.headers["location"] == f"{S}/urn:ngsi-ld:Subscription:1"
    r = await client.get(f"{S}/urn:ngsi-ld:Subscription:1")
    assert r.status_code == 200
    assert r.json() == {
        "id": "urn:ngsi-ld:Subscription:1", "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notificationTrigger": ["attributeCreated", "attributeUpdated"], "status": "active",
        "notification": {"endpoint": {"uri": "http://localhost:1111/n"}}}
    assert CORE_CONTEXT_URL in r.headers["link"]


async def test_generated_id(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{S}/", json=minimal())
    assert r.status_code == 201
    location = r.headers["location"]
    assert location.startswith(f"{S}/urn:ngsi-ld:Subscription:")
    assert (await client.get(location)).json()["id"] == location.rsplit("/", 1)[1]


async def test_every_member_round_trips_with_a_user_context(
        client: httpx.AsyncClient, broker: Broker) -> None:
    url = await user_context(broker)
    r = await client.post(S, json=full(), headers=link(url))
    assert r.status_code == 201, r.text
    r = await client.get(f"{S}/urn:ngsi-ld:Subscription:full", headers=link(url))
    body = r.json()
    assert body.pop("status") == "active"
    expected = full()
    expected["entities"][2]["type"] = "(Car;Bus)|Car"
    assert body == expected
    assert url in r.headers["link"]


async def test_terms_are_stored_expanded_and_compacted_per_request(
        client: httpx.AsyncClient, broker: Broker) -> None:
    url = await user_context(broker)
    assert (await client.post(S, json=full(), headers=link(url))).status_code == 201
    body = (await client.get(f"{S}/urn:ngsi-ld:Subscription:full")).json()
    assert body["entities"][0]["type"] == EX + "Car"
    assert body["watchedAttributes"] == [EX + "speed", EX + "brand"]
    assert body["notification"]["attributes"] == [EX + "speed", EX + "brand"]
    assert body["geoQ"]["geoproperty"] == EX + "where"
    assert body["q"].startswith(EX + "speed>50")
    stored = await broker.subscriptions.get(Actor(), "urn:ngsi-ld:Subscription:full")
    assert stored.watched == [EX + "speed", EX + "brand"]
    assert stored.context == url
    r = await client.get(f"{S}/urn:ngsi-ld:Subscription:full",
                         headers={**link(url), "Accept": JSON_LD})
    assert r.headers["content-type"].startswith(JSON_LD)
    assert r.json()["@context"] == url and r.json()["watchedAttributes"] == ["speed", "brand"]


async def test_inline_context_becomes_an_implicitly_created_one(
        client: httpx.AsyncClient, broker: Broker) -> None:
    body = {**full(), "@context": USER_CONTEXT}
    r = await client.post(S, content=json.dumps(body), headers={"content-type": JSON_LD})
    assert r.status_code == 201, r.text
    stored = await broker.subscriptions.get(Actor(), "urn:ngsi-ld:Subscription:full")
    implicit = await client.get("/ngsi-ld/v1/jsonldContexts",
                                params={"kind": "ImplicitlyCreated"})
    assert implicit.json() == [stored.context]
    assert stored.watched == [EX + "speed", EX + "brand"]
    one_url = minimal(id="urn:x:2", **{"@context": [CORE_CONTEXT_URL]})
    r = await client.post(S, content=json.dumps(one_url), headers={"content-type": JSON_LD})
    assert r.status_code == 201
    assert (await broker.subscriptions.get(Actor(), "urn:x:2")).context == CORE_CONTEXT_URL


async def test_query_pages_with_links_and_count(client: httpx.AsyncClient) -> None:
    for n in range(5):
        assert (await client.post(S, json=minimal(id=f"urn:s:{n}"))).status_code == 201
    r = await client.get(S, params={"limit": "2", "count": "true"})
    assert [s["id"] for s in r.json()] == ["urn:s:0", "urn:s:1"]
    assert r.headers["NGSILD-Results-Count"] == "5"
    assert 'rel="next"' in r.headers["link"] and "offset=2" in r.headers["link"]
    assert 'rel="prev"' not in r.headers["link"]
    r = await client.get(S, params={"limit": "2", "offset": "2"})
    assert [s["id"] for s in r.json()] == ["urn:s:2", "urn:s:3"]
    assert 'rel="prev"' in r.headers["link"] and 'rel="next"' in r.headers["link"]
    r = await client.get(S, params={"offset": "4"})
    assert [s["id"] for s in r.json()] == ["urn:s:4"]
    assert "NGSILD-Results-Count" not in r.headers
    r = await client.get(S, headers={"Accept": JSON_LD})
    assert all(s["@context"] == CORE_CONTEXT_URL for s in r.json())
    for params in ({"limit": "x"}, {"limit": "-1"}, {"limit": "0"}, {"offset": "-2"},
                   {"count": "maybe"}, {"options": "bogus"}):
        problem(await client.get(S, params=params), 400, "BadRequestData")
    problem(await client.get(S, params={"limit": "5000"}), 403, "TooManyResults")
    assert (await client.get(S, headers={"Accept": "text/plain"})).status_code == 406


async def test_sys_attrs_option(client: httpx.AsyncClient) -> None:
    await client.post(S, json=minimal(id="urn:s:1"))
    body = (await client.get(f"{S}/urn:s:1", params={"options": "sysAttrs"})).json()
    assert body["createdAt"] == body["modifiedAt"]
    assert "createdAt" not in (await client.get(f"{S}/urn:s:1")).json()


async def test_patch_is_partial(client: httpx.AsyncClient, broker: Broker) -> None:
    url = await user_context(broker)
    await client.post(S, json=full(), headers=link(url))
    sid = f"{S}/urn:ngsi-ld:Subscription:full"
    fragment = {"description": "new", "subscriptionName": None,
                "notification": {"attributes": ["speed"], "showChanges": None},
                "watchedAttributes": ["brand"]}
    r = await client.patch(sid, json=fragment, headers=link(url))
    assert r.status_code == 204, r.text
    body = (await client.get(sid, headers=link(url))).json()
    assert body["description"] == "new" and "subscriptionName" not in body
    assert body["watchedAttributes"] == ["brand"]
    assert body["notification"]["attributes"] == ["speed"]
    assert "showChanges" not in body["notification"]
    assert body["notification"]["endpoint"] == full()["notification"]["endpoint"]
    assert body["q"] == full()["q"]
    r = await client.patch(sid, json={"isActive": False}, headers={"content-type":
                                                                     "application/merge-patch+json"})
    assert r.status_code == 204
    assert (await client.get(sid)).json()["status"] == "paused"
    await client.patch(sid, json={"isActive": True, "type": "Subscription"})
    assert (await client.get(sid)).json()["status"] == "active"


async def test_refused_patches_change_nothing(client: httpx.AsyncClient) -> None:
    await client.post(S, json=minimal(id="urn:s:1", watchedAttributes=["a"]))
    before = (await client.get(f"{S}/urn:s:1")).json()
    for fragment in ({"notification": None}, {"notification": {"endpoint": None}},
                     {"type": "Other"}, {"id": "urn:s:2"}, {"throttling": -1},
                     {"timeInterval": 10}, {"entities": None, "watchedAttributes": None},
                     {"expiresAt": "2000-01-01T00:00:00Z"}, {"q": "a>"},
                     {"notification": {"format": "keyValues", "showChanges": True}},
                     {"notification": {"endpoint": {"uri": "ftp://x/y"}}}, [1]):
        problem(await client.patch(f"{S}/urn:s:1", json=fragment), 400, "BadRequestData")
        assert (await client.get(f"{S}/urn:s:1")).json() == before, fragment
    problem(await client.patch(f"{S}/urn:s:404", json={}), 404, "ResourceNotFound")
    problem(await client.patch(f"{S}/not-a-uri", json={}), 400, "BadRequestData")
    assert (await client.patch(f"{S}/", json={})).status_code == 405


async def test_delete(client: httpx.AsyncClient) -> None:
    await client.post(S, json=minimal(id="urn:s:1"))
    assert (await client.delete(f"{S}/urn:s:1")).status_code == 204
    problem(await client.delete(f"{S}/urn:s:1"), 404, "ResourceNotFound")
    problem(await client.get(f"{S}/urn:s:1"), 404, "ResourceNotFound")
    problem(await client.get(f"{S}/bad id"), 400, "BadRequestData")
    assert (await client.post(S, json=minimal(id="urn:s:1"))).status_code == 201


async def test_duplicate_id_is_409(client: httpx.AsyncClient) -> None:
    assert (await client.post(S, json=minimal(id="urn:s:1"))).status_code == 201
    problem(await client.post(S, json=minimal(id="urn:s:1")), 409, "AlreadyExists")
    assert await count(client) == 1


BAD = {
    "not an object": [minimal()],
    "no type": {k: v for k, v in minimal().items() if k != "type"},
    "wrong type": minimal(type="Entity"),
    "empty id": minimal(id=""),
    "id not a URI": minimal(id="invalidId"),
    "no notification": {k: v for k, v in minimal().items() if k != "notification"},
    "no endpoint": minimal(notification={"format": "normalized"}),
    "no uri": minimal(notification={"endpoint": {"accept": "application/json"}}),
    "ftp": minimal(notification={"endpoint": {"uri": "ftp://h/x"}}),
    "no host": minimal(notification={"endpoint": {"uri": "http:///x"}}),
    "bad port": minimal(notification={"endpoint": {"uri": "http://h:99999/x"}}),
    "blank in uri": minimal(notification={"endpoint": {"uri": "http://h/a b"}}),
    "mqtt no topic": minimal(notification={"endpoint": {"uri": "mqtt://h:1883"}}),
    "mqtt wildcard": minimal(notification={"endpoint": {"uri": "mqtt://h/a/+/b"}}),
    "mqtt hash": minimal(notification={"endpoint": {"uri": "mqtts://h/a/#"}}),
    "bad accept": minimal(notification={"endpoint": {"uri": "http://h/", "accept": "text/x"}}),
    "bad qos": minimal(notification={"endpoint": {"uri": "mqtt://h/t", "notifierInfo": [
        {"key": "MQTT-QoS", "value": "3"}]}}),
    "bad mqtt version": minimal(notification={"endpoint": {"uri": "mqtt://h/t", "notifierInfo": [
        {"key": "MQTT-Version", "value": "mqtt4"}]}}),
    "bad receiverInfo": minimal(notification={"endpoint": {"uri": "http://h/",
                                                           "receiverInfo": [{"key": "a b"}]}}),
    "negative timeout": minimal(notification={"endpoint": {"uri": "http://h/", "timeout": -1}}),
    "bad format": minimal(notification={"format": "simplified",
                                        "endpoint": {"uri": "http://h/"}}),
    "keyValues showChanges": minimal(notification={"format": "keyValues", "showChanges": True,
                                                   "endpoint": {"uri": "http://h/"}}),
    "pick and attributes": minimal(notification={"pick": ["id"], "attributes": ["a"],
                                                 "endpoint": {"uri": "http://h/"}}),
    "pick and omit same": minimal(notification={"pick": ["a"], "omit": ["a"],
                                                "endpoint": {"uri": "http://h/"}}),
    "bad q": minimal(q="speed>>3"),
    "q not text": minimal(q=3),
    "bad geoQ": minimal(geoQ={"georel": "nearby", "geometry": "Point", "coordinates": [1, 2]}),
    "geoQ no coords": minimal(geoQ={"georel": "within", "geometry": "Polygon"}),
    "bad scopeQ": minimal(scopeQ="/a/(b"),
    "bad csf": minimal(csf="(("),
    "bad idPattern": minimal(entities=[{"idPattern": "(", "type": "T"}]),
    "entity id not URI": minimal(entities=[{"id": "x", "type": "T"}]),
    "entity without type": minimal(entities=[{"id": "urn:x:1"}]),
    "empty entities": minimal(entities=[]),
    "bad type selection": minimal(entities=[{"type": "(A;B"}]),
    "neither entities nor watched": {k: v for k, v in minimal().items() if k != "entities"},
    "empty watched": minimal(watchedAttributes=[]),
    "negative throttling": minimal(throttling=-1),
    "throttling not a number": minimal(throttling="5"),
    "zero timeInterval": minimal(timeInterval=0),
    "timeInterval and watched": minimal(timeInterval=10, watchedAttributes=["a"]),
    "timeInterval and throttling": minimal(timeInterval=10, throttling=30),
    "expiresAt in the past": minimal(expiresAt="2000-01-01T00:00:00Z"),
    "expiresAt not a date": minimal(expiresAt="tomorrow"),
    "bad trigger": minimal(notificationTrigger=["entityChanged"]),
    "isActive text": minimal(isActive="true"),
    "bad lang": minimal(lang="en gb"),
    "bad datasetId": minimal(datasetId=["not a uri"]),
    "jsonldContext not absolute": minimal(jsonldContext="unknownContext"),
    "bad description": minimal(description=["x"]),
}


@pytest.mark.parametrize("name", list(BAD))
async def test_bad_subscriptions_are_400_and_store_nothing(client: httpx.AsyncClient,
                                                         name: str) -> None:
    problem(await client.post(S, json=BAD[name]), 400, "BadRequestData")
    assert await count(client) == 0


async def test_bad_requests(client: httpx.AsyncClient) -> None:
    problem(await client.post(S, content=b"{", headers={"content-type": "application/json"}),
            400, "InvalidRequest")
    r = await client.post(S, content=b"{}", headers={"content-type": "text/plain"})
    problem(r, 415, "UnsupportedMediaType")
    r = await client.post(S, content=json.dumps(minimal()), headers={"content-type": JSON_LD})
    problem(r, 400, "BadRequestData")  # JSON-LD without @context
    assert await count(client) == 0


async def test_unretrievable_jsonld_context_is_503(client: httpx.AsyncClient) -> None:
    body = minimal(jsonldContext="http://127.0.0.1:9/missing.jsonld")
    problem(await client.post(S, json=body), 503, "LdContextNotAvailable")
    assert await count(client) == 0


async def test_tenants_are_isolated(client: httpx.AsyncClient) -> None:
    a, b = {"NGSILD-Tenant": "a"}, {"NGSILD-Tenant": "b"}
    assert (await client.post(S, json=minimal(id="urn:s:1"), headers=a)).status_code == 201
    assert (await client.get(f"{S}/urn:s:1", headers=a)).status_code == 200
    problem(await client.get(f"{S}/urn:s:1"), 404, "ResourceNotFound")
    problem(await client.get(f"{S}/urn:s:1", headers=b), 404, "NonexistentTenant")
    problem(await client.get(S, headers=b), 404, "NonexistentTenant")
    assert await count(client) == 0 and await count(client, **a) == 1
    assert (await client.get("/ngsi-ld/v1/entities", params={"type": "T"},
                             headers=a)).json() == []
    assert (await client.post(S, json=minimal(id="urn:s:1"))).status_code == 201
    problem(await client.delete(f"{S}/urn:s:1", headers=b), 404, "ResourceNotFound")
    assert (await client.delete(f"{S}/urn:s:1", headers=a)).status_code == 204
    assert (await client.get(f"{S}/urn:s:1")).status_code == 200


async def test_expired_is_computed_when_read(client: httpx.AsyncClient) -> None:
    stamp = (datetime.now(UTC) + timedelta(seconds=1.5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert (await client.post(S, json=minimal(id="urn:s:1", expiresAt=stamp))).status_code == 201
    assert (await client.get(f"{S}/urn:s:1")).json()["status"] == "active"
    await asyncio.sleep(1.6)
    body = (await client.get(f"{S}/urn:s:1")).json()
    assert body["status"] == "expired" and body["expiresAt"] == stamp
    assert (await client.patch(f"{S}/urn:s:1", json={"isActive": True})).status_code == 204
    assert (await client.get(f"{S}/urn:s:1")).json()["status"] == "expired"
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await client.patch(f"{S}/urn:s:1", json={"expiresAt": later})).status_code == 204
    assert (await client.get(f"{S}/urn:s:1")).json()["status"] == "active"


async def test_delivery_outcomes_show_in_notification(client: httpx.AsyncClient,
                                                      broker: Broker) -> None:
    await client.post(S, json=minimal(id="urn:s:1"))
    ok = NotificationOutcome(True, "2026-01-02T00:00:00.000000Z")
    failed = NotificationOutcome(False, "2026-01-03T00:00:00.000000Z")
    assert await broker.subscriptions.record_notification("", "urn:s:1", ok)
    assert await broker.subscriptions.record_notification("", "urn:s:1", failed)
    body = (await client.get(f"{S}/urn:s:1")).json()
    assert body["status"] == "failed"
    assert body["notification"] == {
        "endpoint": {"uri": "http://localhost:1111/n"}, "status": "failed", "timesSent": 2,
        "timesFailed": 1, "lastNotification": failed.at, "lastSuccess": ok.at,
        "lastFailure": failed.at}


async def test_read_only_and_unknown_members_are_ignored(client: httpx.AsyncClient) -> None:
    body = minimal(id="urn:s:1", status="expired", createdAt="x", extra={"a": 1},
                   notification={"endpoint": {"uri": "http://h/"}, "timesSent": 42,
                                 "status": "failed"})
    assert (await client.post(S, json=body)).status_code == 201
    got = (await client.get(f"{S}/urn:s:1")).json()
    assert got["status"] == "active" and "extra" not in got and "createdAt" not in got
    assert got["notification"] == {"endpoint": {"uri": "http://h/"}}
