"""The entity API through HTTP: status codes, headers and bodies per ETSI GS CIM 009."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

E = "/ngsi-ld/v1/entities"
BATCH = "/ngsi-ld/v1/entityOperations"
PROBLEM = "application/problem+json"
ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def car(n: int, **extra: Any) -> dict[str, Any]:
    """A car entity in normalized form (core context only)."""
    body: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Car:{n}",
        "type": "Car",
        "speed": {"type": "Property", "value": n * 10, "unitCode": "KMH",
                  "observedAt": "2026-01-01T00:00:00Z"},
        "brand": {"type": "Property", "value": "seat" if n % 2 else "fiat"},
        "owner": {"type": "Relationship", "object": f"urn:ngsi-ld:Person:{n}"},
        "location": {"type": "GeoProperty",
                     "value": {"type": "Point", "coordinates": [-3.70 + n * 0.01, 40.41]}},
    }
    body.update(extra)
    return body


async def post(client: httpx.AsyncClient, body: Any, **kw: Any) -> httpx.Response:
    """POST /entities."""
    return await client.post(E, json=body, **kw)


def problem(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """Assert a problem+json response of a type."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["type"] == ERR + kind, body
    assert body["detail"]
    return body


async def test_create_and_retrieve(client: httpx.AsyncClient) -> None:
    r = await post(client, car(1))
    assert r.status_code == 201
    assert r.headers["location"] == f"{E}/urn:ngsi-ld:Car:1"
    r = await client.get(f"{E}/urn:ngsi-ld:Car:1")
    assert r.status_code == 200
    body = r.json()
    assert body["speed"] == {"type": "Property", "value": 10, "unitCode": "KMH",
                             "observedAt": "2026-01-01T00:00:00Z"}
    assert body["owner"]["object"] == "urn:ngsi-ld:Person:1"
    assert "createdAt" not in body
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in r.headers["link"]


async def test_retrieve_formats(client: httpx.AsyncClient) -> None:
    await post(client, car(2))
    kv = (await client.get(f"{E}/urn:ngsi-ld:Car:2", params={"options": "keyValues"})).json()
    assert kv["speed"] == 20 and kv["owner"] == "urn:ngsi-ld:Person:2"
    assert kv["location"]["type"] == "Point"
    concise = (await client.get(f"{E}/urn:ngsi-ld:Car:2", params={"format": "concise"})).json()
    assert concise["brand"] == "fiat"
    assert concise["owner"] == {"object": "urn:ngsi-ld:Person:2"}
    sys_ = (await client.get(f"{E}/urn:ngsi-ld:Car:2", params={"options": "sysAttrs"})).json()
    assert sys_["createdAt"] and sys_["speed"]["modifiedAt"]
    ld = await client.get(f"{E}/urn:ngsi-ld:Car:2", headers={"Accept": "application/ld+json"})
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert "@context" in ld.json()
    picked = (await client.get(f"{E}/urn:ngsi-ld:Car:2", params={"pick": "id,speed"})).json()
    assert set(picked) == {"id", "speed"}
    omitted = (await client.get(f"{E}/urn:ngsi-ld:Car:2", params={"omit": "speed,owner"})).json()
    assert "speed" not in omitted and "brand" in omitted


async def test_geojson_representation(client: httpx.AsyncClient) -> None:
    await post(client, car(3))
    r = await client.get(f"{E}/urn:ngsi-ld:Car:3", headers={"Accept": "application/geo+json"})
    assert r.status_code == 200
    feature = r.json()
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
    r = await client.get(E, params={"type": "Car"}, headers={"Accept": "application/geo+json"})
    assert r.json()["type"] == "FeatureCollection"


async def test_concise_input(client: httpx.AsyncClient) -> None:
    body = {"id": "urn:ngsi-ld:Car:50", "type": "Car", "speed": 5, "owner": {"object": "urn:x:1"},
            "location": {"type": "Point", "coordinates": [1, 2]}}
    assert (await post(client, body)).status_code == 201
    got = (await client.get(f"{E}/urn:ngsi-ld:Car:50")).json()
    assert got["speed"] == {"type": "Property", "value": 5}
    assert got["owner"] == {"type": "Relationship", "object": "urn:x:1"}
    assert got["location"]["type"] == "GeoProperty"


async def test_errors(client: httpx.AsyncClient) -> None:
    await post(client, car(4))
    problem(await post(client, car(4)), 409, "AlreadyExists")
    problem(await client.get(f"{E}/urn:ngsi-ld:Car:404"), 404, "ResourceNotFound")
    problem(await client.get(f"{E}/not-a-uri"), 400, "BadRequestData")
    problem(await client.post(E, content=b"{nope", headers={"content-type": "application/json"}),
            400, "InvalidRequest")
    problem(await post(client, {"type": "Car"}), 400, "BadRequestData")
    problem(await post(client, {"id": "bad id", "type": "Car"}), 400, "BadRequestData")
    problem(await post(client, car(5, speed={"type": "Property"})), 400, "BadRequestData")
    bad_geo = car(6, location={"type": "GeoProperty", "value": {"type": "Point",
                                                                "coordinates": [500, 1]}})
    problem(await post(client, bad_geo), 400, "BadRequestData")
    problem(await client.get(E, params={"type": "Car", "q": "speed>>"}), 400, "BadRequestData")
    problem(await client.get(E), 400, "BadRequestData")
    r = await client.post(E, content=b"{}", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = await client.get(f"{E}/urn:ngsi-ld:Car:4", headers={"Accept": "text/html"})
    assert r.status_code == 406
    assert (await client.get(f"{E}/urn:ngsi-ld:Car:5")).status_code == 404  # nothing applied


async def test_ld_json_needs_context_in_body(client: httpx.AsyncClient) -> None:
    r = await client.post(E, json=car(7), headers={"content-type": "application/ld+json"})
    problem(r, 400, "BadRequestData")
    body = {**car(7), "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"}
    r = await client.post(E, json=body, headers={"content-type": "application/ld+json"})
    assert r.status_code == 201
    r = await client.post(E, json={**car(8), "@context": {}})
    problem(r, 400, "BadRequestData")


async def test_user_context_expands_and_compacts(client: httpx.AsyncClient) -> None:
    ctx = {"speed": "https://example.org/speed", "Car": "https://example.org/Car"}
    body = {**car(9), "@context": [ctx]}
    r = await client.post(E, json=body, headers={"content-type": "application/ld+json"})
    assert r.status_code == 201
    plain = (await client.get(f"{E}/urn:ngsi-ld:Car:9")).json()
    assert plain["type"] == "https://example.org/Car"
    assert "https://example.org/speed" in plain
    r = await client.post(f"{BATCH}/query", json={"type": "Query", "entities": [{"type": "Car"}],
                                                  "@context": [ctx]},
                          headers={"content-type": "application/ld+json"})
    assert r.status_code == 200
    assert r.json()[0]["type"] == "Car" and "speed" in r.json()[0]


async def test_replace_merge_delete(client: httpx.AsyncClient) -> None:
    await post(client, car(10))
    u = f"{E}/urn:ngsi-ld:Car:10"
    r = await client.put(u, json={"type": "Car", "color": {"type": "Property", "value": "red"}})
    assert r.status_code == 204
    got = (await client.get(u)).json()
    assert "speed" not in got and got["color"]["value"] == "red"
    r = await client.patch(u, json={"color": {"type": "Property", "value": "blue"},
                                    "size": {"type": "Property", "value": 3}})
    assert r.status_code == 204
    got = (await client.get(u)).json()
    assert got["color"]["value"] == "blue" and got["size"]["value"] == 3
    r = await client.patch(u, json={"size": "urn:ngsi-ld:null"})
    assert r.status_code == 204
    assert "size" not in (await client.get(u)).json()
    assert (await client.delete(u)).status_code == 204
    problem(await client.delete(u), 404, "ResourceNotFound")


async def test_attribute_operations(client: httpx.AsyncClient) -> None:
    await post(client, car(11))
    u = f"{E}/urn:ngsi-ld:Car:11"
    r = await client.post(f"{u}/attrs", json={"color": {"type": "Property", "value": "red"}})
    assert r.status_code == 204
    r = await client.post(f"{u}/attrs", params={"options": "noOverwrite"},
                          json={"color": {"type": "Property", "value": "x"},
                                "wheels": {"type": "Property", "value": 4}})
    assert r.status_code == 207
    assert r.json()["updated"] == ["wheels"]
    assert r.json()["notUpdated"][0]["attributeName"] == "color"
    r = await client.patch(f"{u}/attrs", json={"color": {"type": "Property", "value": "green"},
                                               "nothere": {"type": "Property", "value": 1}})
    assert r.status_code == 207
    assert (await client.get(u)).json()["color"]["value"] == "green"
    r = await client.patch(f"{u}/attrs/speed", json={"value": 99})
    assert r.status_code == 204
    speed = (await client.get(u)).json()["speed"]
    assert speed["value"] == 99 and speed["unitCode"] == "KMH"
    r = await client.put(f"{u}/attrs/speed", json={"type": "Property", "value": 7})
    assert r.status_code == 204
    assert (await client.get(u)).json()["speed"] == {"type": "Property", "value": 7}
    problem(await client.patch(f"{u}/attrs/nothere", json={"value": 1}), 404, "ResourceNotFound")
    assert (await client.delete(f"{u}/attrs/speed")).status_code == 204
    problem(await client.delete(f"{u}/attrs/speed"), 404, "ResourceNotFound")


async def test_multi_attributes_with_dataset_id(client: httpx.AsyncClient) -> None:
    body = car(12, temperature=[
        {"type": "Property", "value": 20},
        {"type": "Property", "value": 21, "datasetId": "urn:ngsi-ld:Dataset:a"},
    ])
    assert (await post(client, body)).status_code == 201
    u = f"{E}/urn:ngsi-ld:Car:12"
    temps = (await client.get(u)).json()["temperature"]
    assert len(temps) == 2
    r = await client.delete(f"{u}/attrs/temperature", params={"datasetId": "urn:ngsi-ld:Dataset:a"})
    assert r.status_code == 204
    assert (await client.get(u)).json()["temperature"]["value"] == 20
    r = await client.delete(f"{u}/attrs/temperature", params={"deleteAll": "true"})
    assert r.status_code == 204
    assert "temperature" not in (await client.get(u)).json()


async def test_sub_attributes_and_attribute_kinds(client: httpx.AsyncClient) -> None:
    body = {
        "id": "urn:ngsi-ld:Thing:1", "type": "Thing",
        "name": {"type": "LanguageProperty", "languageMap": {"en": "Bridge", "fr": "Pont"}},
        "category": {"type": "VocabProperty", "vocab": "bridge"},
        "config": {"type": "JsonProperty", "json": {"a": [1, 2]}},
        "readings": {"type": "ListProperty", "valueList": [1, 2, 3]},
        "links": {"type": "ListRelationship", "objectList": [{"object": "urn:x:1"}]},
        "temp": {"type": "Property", "value": 3,
                 "accuracy": {"type": "Property", "value": 0.5}},
    }
    assert (await post(client, body)).status_code == 201
    got = (await client.get(f"{E}/urn:ngsi-ld:Thing:1")).json()
    assert got["name"]["languageMap"]["fr"] == "Pont"
    assert got["category"]["vocab"] == "bridge"
    assert got["config"]["json"] == {"a": [1, 2]}
    assert got["temp"]["accuracy"]["value"] == 0.5
    fr = (await client.get(f"{E}/urn:ngsi-ld:Thing:1", params={"lang": "fr"})).json()
    assert fr["name"]["value"] == "Pont" and fr["name"]["lang"] == "fr"
    r = await client.get(E, params={"type": "Thing", "q": "temp.accuracy<1"})
    assert len(r.json()) == 1


async def test_query_paging_count_links(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BATCH}/create", json=[car(i) for i in range(20, 30)])
    assert r.status_code == 201
    r = await client.get(E, params={"type": "Car", "limit": 3, "count": "true",
                                    "q": "speed>=200"})
    assert r.status_code == 200
    assert r.headers["ngsild-results-count"] == "10"
    assert len(r.json()) == 3
    assert 'rel="next"' in r.headers["link"]
    r = await client.get(E, params={"type": "Car", "limit": 3, "offset": 9, "q": "speed>=200"})
    assert len(r.json()) == 1
    problem(await client.get(E, params={"type": "Car", "limit": 5000}), 403, "TooManyResults")
    r = await client.get(E, params={"type": "Car", "attrs": "speed", "q": "speed>=200",
                                    "limit": 1})
    assert set(r.json()[0]) == {"id", "type", "speed"}
    r = await client.get(E, params={"type": "Car", "georel": "near;maxDistance==500",
                                    "geometry": "Point", "coordinates": "[-3.5,40.41]"})
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Car:20"]
    r = await client.get(E, params={"type": "Car", "orderBy": "speed;descending", "limit": 2,
                                    "q": "speed>=200"})
    assert [e["speed"]["value"] for e in r.json()] == [290, 280]


async def test_batch_operations(client: httpx.AsyncClient) -> None:
    r = await client.post(f"{BATCH}/create", json=[car(40), car(41)])
    assert r.status_code == 201 and sorted(r.json()) == ["urn:ngsi-ld:Car:40", "urn:ngsi-ld:Car:41"]
    r = await client.post(f"{BATCH}/create", json=[car(41), car(42), {"id": "x"}])
    assert r.status_code == 207
    body = r.json()
    assert body["success"] == ["urn:ngsi-ld:Car:42"]
    assert {e["entityId"] for e in body["errors"]} == {"urn:ngsi-ld:Car:41", "x"}
    r = await client.post(f"{BATCH}/upsert", json=[car(42), car(43)])
    assert r.status_code == 201 and r.json() == ["urn:ngsi-ld:Car:43"]
    r = await client.post(f"{BATCH}/upsert", json=[car(42)])
    assert r.status_code == 204
    r = await client.post(f"{BATCH}/update", json=[
        {"id": "urn:ngsi-ld:Car:40", "color": {"type": "Property", "value": "red"}}])
    assert r.status_code == 204
    r = await client.post(f"{BATCH}/merge", json=[
        {"id": "urn:ngsi-ld:Car:40", "color": {"type": "Property", "value": "blue"}},
        {"id": "urn:ngsi-ld:Car:404", "color": {"type": "Property", "value": "blue"}}])
    assert r.status_code == 207
    r = await client.post(f"{BATCH}/delete", json=["urn:ngsi-ld:Car:40", "urn:ngsi-ld:Car:404"])
    assert r.status_code == 207
    assert r.json()["errors"][0]["error"]["type"] == ERR + "ResourceNotFound"
    problem(await client.post(f"{BATCH}/create", json={"id": "x"}), 400, "BadRequestData")
    r = await client.delete(E, params={"type": "Car"})
    assert r.status_code == 204
    assert (await client.get(E, params={"type": "Car"})).json() == []


async def test_tenants(client: httpx.AsyncClient) -> None:
    h = {"NGSILD-Tenant": "city1"}
    problem(await client.get(E, params={"type": "Car"}, headers=h), 404, "NonexistentTenant")
    assert (await post(client, car(60), headers=h)).status_code == 201
    assert len((await client.get(E, params={"type": "Car"}, headers=h)).json()) == 1
    problem(await client.get(f"{E}/urn:ngsi-ld:Car:60"), 404, "ResourceNotFound")
    other = {"NGSILD-Tenant": "city2"}
    problem(await client.get(f"{E}/urn:ngsi-ld:Car:60", headers=other), 404, "NonexistentTenant")


async def test_discovery(client: httpx.AsyncClient) -> None:
    await client.post(f"{BATCH}/create", json=[car(70), car(71)])
    r = await client.get("/ngsi-ld/v1/types")
    assert r.json()["typeList"] == ["Car"]
    details = (await client.get("/ngsi-ld/v1/types", params={"details": "true"})).json()
    assert "speed" in details[0]["attributeNames"]
    info = (await client.get("/ngsi-ld/v1/types/Car")).json()
    assert info["entityCount"] == 2
    attrs = (await client.get("/ngsi-ld/v1/attributes")).json()
    assert "speed" in attrs["attributeList"]
    speed = (await client.get("/ngsi-ld/v1/attributes/speed")).json()
    assert speed["typeNames"] == ["Car"] and speed["attributeCount"] == 2
    problem(await client.get("/ngsi-ld/v1/types/Nope"), 404, "ResourceNotFound")


@pytest.mark.parametrize("evil", ["'; DROP TABLE entities; --", '") OR 1=1 --', "%", "_"])
async def test_injection_attempts(client: httpx.AsyncClient, evil: str) -> None:
    await post(client, car(80))
    for params in ({"type": "Car", "q": f'brand=="{evil}"'}, {"type": evil},
                   {"type": "Car", "attrs": evil}, {"id": f"urn:x:{evil}"}):
        r = await client.get(E, params=params)
        assert r.status_code in (200, 400), r.text
        if r.status_code == 200:
            assert r.json() == []
    assert (await client.get(f"{E}/urn:ngsi-ld:Car:80")).status_code == 200


async def test_body_size_limit(client: httpx.AsyncClient) -> None:
    big = {"id": "urn:ngsi-ld:Car:big", "type": "Car",
           "blob": {"type": "Property", "value": "x" * 9_000_000}}
    r = await post(client, big)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith(PROBLEM)
    assert (await client.get(f"{E}/urn:ngsi-ld:Car:big")).status_code == 404
