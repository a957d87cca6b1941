"""The temporal API through HTTP: histories of entity changes, temporal writes, queries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from urbis.api.app import create_app
from urbis.broker.container import build_broker
from urbis.settings import Settings

E = "/ngsi-ld/v1/entities"
T = "/ngsi-ld/v1/temporal/entities"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"
CAR = "urn:ngsi-ld:Car:1"


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client on a broker returning at most 3 instances per attribute."""
    small = replace(settings, temporal_instance_limit=3)
    broker = await build_broker(small)
    app = create_app(small, broker=broker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test") as c:
        yield c
    await broker.close()


def day(n: int) -> str:
    """2020-01-0n at midnight."""
    return f"2020-01-{n:02d}T00:00:00Z"


async def speeds(client: httpx.AsyncClient, n: int = 5, entity: str = CAR) -> None:
    """Create a car and PATCH its speed to 2..n on days 2..n (speed 1 on day 1)."""
    r = await client.post(E, json={"id": entity, "type": "Car", "speed": {
        "type": "Property", "value": 1, "observedAt": day(1)}, "brand": {
        "type": "Property", "value": "seat"}})
    assert r.status_code == 201, r.text
    for i in range(2, n + 1):
        r = await client.patch(f"{E}/{entity}/attrs/speed",
                               json={"value": i, "observedAt": day(i)})
        assert r.status_code == 204, r.text


def problem(r: httpx.Response, status: int, kind: str) -> None:
    """Assert a problem+json answer of a type."""
    assert r.status_code == status, r.text
    assert r.json()["type"] == ERR + kind, r.text


async def test_retrieve_normalized(client: httpx.AsyncClient) -> None:
    await speeds(client, 3)
    r = await client.get(f"{T}/{CAR}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == CAR and body["type"] == "Car"
    assert [i["value"] for i in body["speed"]] == [1, 2, 3]
    assert [i["observedAt"] for i in body["speed"]] == [day(1), day(2), day(3)]
    assert all(i["instanceId"].startswith("urn:ngsi-ld:") for i in body["speed"])
    assert "createdAt" not in body["speed"][0]
    assert body["brand"][0]["value"] == "seat" and len(body["brand"]) == 1
    assert "Link" in r.headers
    r = await client.get(f"{T}/{CAR}", params={"options": "sysAttrs", "attrs": "speed"})
    body = r.json()
    assert "brand" not in body and "createdAt" in body and "modifiedAt" in body["speed"][0]


async def test_temporal_values_and_timerel(client: httpx.AsyncClient) -> None:
    await speeds(client, 3)
    r = await client.get(f"{T}/{CAR}", params={"options": "temporalValues",
                                               "timerel": "after", "timeAt": day(1)})
    assert r.status_code == 200, r.text
    assert r.json()["speed"] == {"type": "Property", "values": [[2, day(2)], [3, day(3)]]}
    r = await client.get(f"{T}/{CAR}", params={"format": "temporalValues", "timerel": "between",
                                               "timeAt": day(1), "endTimeAt": day(3)})
    assert r.json()["speed"]["values"] == [[1, day(1)], [2, day(2)]]
    r = await client.get(f"{T}/{CAR}", params={"format": "temporalValues", "lastN": "1"})
    assert r.json()["speed"]["values"] == [[3, day(3)]]


async def test_query_with_count_and_aggregates(client: httpx.AsyncClient) -> None:
    await speeds(client, 4)
    await speeds(client, 2, "urn:ngsi-ld:Car:2")
    r = await client.get(T, params={"type": "Car", "count": "true", "limit": "1", "lastN": "1"})
    assert r.status_code == 200, r.text
    assert r.headers["NGSILD-Results-Count"] == "2"
    assert [e["id"] for e in r.json()] == [CAR]
    assert 'rel="next"' in r.headers["link"]
    r = await client.get(T, params={
        "type": "Car", "attrs": "speed", "format": "aggregatedValues",
        "aggrMethods": "avg,max,totalCount", "aggrPeriodDuration": "P2D",
        "timerel": "after", "timeAt": "2019-12-31T23:59:59Z"})
    assert r.status_code == 200, r.text
    first = r.json()[0]["speed"]
    assert first["type"] == "Property"
    assert first["avg"] == [[1.5, "2019-12-31T23:59:59Z", "2020-01-02T23:59:59Z"],
                            [3.5, "2020-01-02T23:59:59Z", "2020-01-04T23:59:59Z"]]
    assert [v[0] for v in first["max"]] == [2, 4]
    assert [v[0] for v in first["totalCount"]] == [2, 2]
    r = await client.post("/ngsi-ld/v1/temporal/entityOperations/query", json={
        "type": "Query", "entities": [{"type": "Car"}], "attrs": ["speed"],
        "temporalQ": {"timerel": "before", "timeAt": day(2)}})
    assert r.status_code == 200, r.text
    assert [[i["value"] for i in e["speed"]] for e in r.json()] == [[1], [1]]


async def test_content_range_pagination(client: httpx.AsyncClient) -> None:
    await speeds(client, 5)
    r = await client.get(f"{T}/{CAR}", params={"attrs": "speed"})
    assert r.status_code == 206, r.text
    assert r.headers["content-range"] == f"date-time {day(1)}-{day(3)}/*"
    assert [i["value"] for i in r.json()["speed"]] == [1, 2, 3]
    r = await client.get(f"{T}/{CAR}", params={"attrs": "speed", "timerel": "after",
                                               "timeAt": day(3)})
    assert r.status_code == 200
    assert [i["value"] for i in r.json()["speed"]] == [4, 5]
    r = await client.get(f"{T}/{CAR}", params={"attrs": "speed", "lastN": "4"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"date-time {day(3)}-{day(5)}/4"
    assert [i["value"] for i in r.json()["speed"]] == [3, 4, 5]


async def test_temporal_writes_and_instances(client: httpx.AsyncClient) -> None:
    body = {"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "temperature": [
        {"type": "Property", "value": 20, "observedAt": day(1)},
        {"type": "Property", "value": 21, "observedAt": day(2)}]}
    r = await client.post(T, json=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{T}/urn:ngsi-ld:Sensor:1"
    r = await client.post(T, json={**body, "temperature": [
        {"type": "Property", "value": 22, "observedAt": day(3)}]})
    assert r.status_code == 204, r.text
    r = await client.post(f"{T}/urn:ngsi-ld:Sensor:1/attrs", json={
        "humidity": {"type": "Property", "value": 50, "observedAt": day(1)}})
    assert r.status_code == 204, r.text
    got = (await client.get(f"{T}/urn:ngsi-ld:Sensor:1")).json()
    assert [i["value"] for i in got["temperature"]] == [20, 21, 22]
    assert got["humidity"][0]["value"] == 50
    iid = got["temperature"][0]["instanceId"]
    r = await client.patch(f"{T}/urn:ngsi-ld:Sensor:1/attrs/temperature/{iid}",
                           json={"value": 25, "observedAt": day(4)})
    assert r.status_code == 204, r.text
    got = (await client.get(f"{T}/urn:ngsi-ld:Sensor:1", params={"attrs": "temperature"}))
    assert [i["value"] for i in got.json()["temperature"]] == [21, 22, 25]
    r = await client.delete(f"{T}/urn:ngsi-ld:Sensor:1/attrs/temperature/{iid}")
    assert r.status_code == 204
    problem(await client.delete(f"{T}/urn:ngsi-ld:Sensor:1/attrs/temperature/{iid}"),
            404, "ResourceNotFound")
    r = await client.delete(f"{T}/urn:ngsi-ld:Sensor:1/attrs/humidity")
    assert r.status_code == 204
    got = (await client.get(f"{T}/urn:ngsi-ld:Sensor:1")).json()
    assert "humidity" not in got and len(got["temperature"]) == 2
    assert (await client.delete(f"{T}/urn:ngsi-ld:Sensor:1")).status_code == 204
    problem(await client.get(f"{T}/urn:ngsi-ld:Sensor:1"), 404, "ResourceNotFound")


async def test_entity_deletion_is_kept_in_history(client: httpx.AsyncClient) -> None:
    await speeds(client, 2)
    assert (await client.delete(f"{E}/{CAR}")).status_code == 204
    got = (await client.get(f"{T}/{CAR}", params={"options": "sysAttrs"})).json()
    assert "deletedAt" in got
    assert got["speed"][-1]["value"] == "urn:ngsi-ld:null"
    assert "deletedAt" in got["speed"][-1]


@pytest.mark.parametrize("params", [
    {"timerel": "during", "timeAt": day(1)},
    {"timerel": "before"},
    {"timerel": "between", "timeAt": day(2)},
    {"timerel": "between", "timeAt": day(2), "endTimeAt": day(1)},
    {"timerel": "after", "timeAt": "yesterday"},
    {"timeAt": day(1)},
    {"timeproperty": "deletedAt"},
    {"lastN": "0"},
    {"lastN": "two"},
    {"options": "temporalValues,aggregatedValues"},
    {"options": "keyValues"},
    {"format": "aggregatedValues"},
    {"format": "aggregatedValues", "aggrMethods": "median"},
    {"format": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "1 day"},
    {"format": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "P1M"},
    {"aggrMethods": "avg"},
])
async def test_bad_parameters(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    await speeds(client, 1)
    problem(await client.get(f"{T}/{CAR}", params=params), 400, "BadRequestData")
    problem(await client.get(T, params={"type": "Car", **params}), 400, "BadRequestData")


async def test_bad_requests(client: httpx.AsyncClient) -> None:
    await speeds(client, 1)
    problem(await client.get(T), 400, "BadRequestData")  # no entity filter
    problem(await client.get(f"{T}/not-a-uri"), 400, "BadRequestData")
    problem(await client.get(f"{T}/urn:ngsi-ld:Car:404"), 404, "ResourceNotFound")
    problem(await client.post(T, json={"type": "Car"}), 400, "BadRequestData")
    problem(await client.post(T, json={"id": CAR, "type": "Car", "speed": [
        {"type": "Property", "value": 1, "observedAt": "soon"}]}), 400, "BadRequestData")
    problem(await client.post(T, content=b"{", headers={"Content-Type": "application/json"}),
            400, "InvalidRequest")
    problem(await client.post(f"{T}/urn:ngsi-ld:Car:404/attrs", json={
        "speed": {"type": "Property", "value": 1}}), 404, "ResourceNotFound")
    problem(await client.patch(f"{T}/{CAR}/attrs/speed/urn:x:1", json={"value": 1}),
            404, "ResourceNotFound")
    problem(await client.patch(f"{T}/{CAR}/attrs/speed/urn:ngsi-ld:Instance:1", json=[1]),
            400, "BadRequestData")
    problem(await client.delete(f"{T}/{CAR}/attrs/speed", params={"deleteAll": "maybe"}),
            400, "BadRequestData")
    problem(await client.get(f"{T}/{CAR}", headers={"Accept": "text/csv"}), 406,
            "NotAcceptable")
    # nothing was changed by the refused requests
    assert [i["value"] for i in (await client.get(f"{T}/{CAR}")).json()["speed"]] == [1]


async def test_query_filters_on_the_current_state(client: httpx.AsyncClient) -> None:
    await speeds(client, 2)
    r = await client.post(E, json={
        "id": "urn:ngsi-ld:Car:2", "type": "Car",
        "speed": {"type": "Property", "value": 50, "observedAt": day(1)},
        "location": {"type": "GeoProperty", "value": {"type": "Point",
                                                      "coordinates": [-3.7, 40.41]}}})
    assert r.status_code == 201, r.text

    async def found(**params: str) -> list[str]:
        r = await client.get(T, params={"attrs": "speed", **params})
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()]

    assert await found(type="Car") == [CAR, "urn:ngsi-ld:Car:2"]
    assert await found(type="Car", q="speed>10") == ["urn:ngsi-ld:Car:2"]
    assert await found(type="Car", georel="near;maxDistance==1000", geometry="Point",
                       coordinates="[-3.7,40.41]") == ["urn:ngsi-ld:Car:2"]
    assert await found(idPattern=".*:1$") == [CAR]
    assert await found(id=f"{CAR},urn:ngsi-ld:Car:3") == [CAR]
    assert await found(type="Bus") == []
    r = await client.get(T, params={"type": "Car"}, headers={"NGSILD-Tenant": "nobody"})
    problem(r, 404, "NonexistentTenant")
