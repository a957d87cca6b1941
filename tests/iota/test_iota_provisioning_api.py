"""The provisioning API (/iot/services, /iot/devices): FIWARE IoT Agent request and answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from iota_helpers import CITY, THERMOMETERS, provision

SUB = {"fiware-service": "city", "fiware-servicepath": "/north"}


async def test_service_groups_create_list_update_delete(iota: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS, {"apikey": "k2", "entity_type": "Lamp"}])
    r = await iota.get("/iot/services", headers=CITY)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["count"] == 2 and [s["apikey"] for s in body["services"]] == ["k1", "k2"]
    first = body["services"][0]
    assert first["service"] == "city" and first["subservice"] == "/"
    assert first["cbroker"] == "http://x" and first["attributes"] == THERMOMETERS["attributes"]
    assert body["services"][1]["resource"] == ""
    r = await iota.get("/iot/services", params={"limit": 1, "offset": 1}, headers=CITY)
    assert r.json()["count"] == 2 and [s["apikey"] for s in r.json()["services"]] == ["k2"]
    r = await iota.put("/iot/services", params={"apikey": "k1", "resource": "/iot/d"},
                       json={"entity_type": "Sensor", "explicitAttrs": True}, headers=CITY)
    assert r.status_code == 204, r.text
    r = await iota.get("/iot/services", params={"apikey": "k1"}, headers=CITY)
    [changed] = r.json()["services"]
    assert changed["entity_type"] == "Sensor" and changed["explicitAttrs"] is True
    assert changed["static_attributes"] == THERMOMETERS["static_attributes"]
    r = await iota.delete("/iot/services", params={"apikey": "k1", "resource": "/iot/d"},
                          headers=CITY)
    assert r.status_code == 204
    r = await iota.delete("/iot/services", params={"apikey": "k1", "resource": "/iot/d"},
                          headers=CITY)
    assert r.status_code == 404 and r.json()["name"] == "DEVICE_GROUP_NOT_FOUND"
    assert set(r.json()) == {"name", "message"}


async def test_service_paths_and_tenants_scope_groups(iota: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS])
    await provision(iota, [{"apikey": "k3", "entity_type": "Lamp"}], headers=SUB)
    everywhere = {**CITY, "fiware-servicepath": "/*"}
    assert (await iota.get("/iot/services", headers=everywhere)).json()["count"] == 2
    r = await iota.get("/iot/services", headers=SUB)
    assert [s["apikey"] for s in r.json()["services"]] == ["k3"]
    assert r.json()["services"][0]["subservice"] == "/north"
    other = {"fiware-service": "other", "fiware-servicepath": "/*"}
    assert (await iota.get("/iot/services", headers=other)).json() == {"count": 0,
                                                                        "services": []}
    r = await iota.post("/iot/services", json={"services": [THERMOMETERS | {"resource": "/x"}]},
                        headers={"fiware-service": "other"})  # an apikey names one tenant
    assert r.status_code == 409 and r.json()["name"] == "DUPLICATE_GROUP"
    r = await iota.put("/iot/services", params={"apikey": "k3"}, json={}, headers=CITY)
    assert r.status_code == 404  # k3 is in /north, not in /
    r = await iota.get("/iot/services")  # no fiware-service: the default tenant
    assert r.json()["count"] == 0


async def test_duplicate_and_missing_groups(iota: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS])
    r = await iota.post("/iot/services", json={"services": [THERMOMETERS]}, headers=CITY)
    assert r.status_code == 409 and r.json()["name"] == "DUPLICATE_GROUP"
    r = await iota.post("/iot/services", json={"services": [{"apikey": "n1"}, {"apikey": "n1"}]},
                        headers=CITY)
    assert r.status_code == 409
    assert (await iota.get("/iot/services", headers=CITY)).json()["count"] == 1  # none added
    r = await iota.put("/iot/services", json={"entity_type": "X"}, headers=CITY)
    assert r.status_code == 400 and r.json()["name"] == "MANDATORY_PARAMS_NOT_FOUND"
    r = await iota.put("/iot/services", params={"apikey": "k1"}, json={"apikey": "k9"},
                       headers=CITY)
    assert r.status_code == 400 and r.json()["name"] == "WRONG_SYNTAX"


async def test_devices_create_list_get_update_delete(iota: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS], [
        {"device_id": "t1", "protocol": "PDI-IoTA-UltraLight", "transport": "HTTP",
         "entity_type": "Thermometer", "attributes": [{"object_id": "b", "name": "battery",
                                                       "type": "Number"}]},
        {"device_id": "t2", "entity_name": "urn:ngsi-ld:Thermometer:kitchen", "apikey": "k1",
         "entity_type": "Thermometer", "expectedInterval": 300}])
    r = await iota.get("/iot/devices", headers=CITY)
    body = r.json()
    assert body["count"] == 2 and [d["device_id"] for d in body["devices"]] == ["t1", "t2"]
    t1 = body["devices"][0]
    assert t1["apikey"] == "k1"  # the group of its entity type
    assert t1["entity_name"] == "urn:ngsi-ld:Thermometer:t1"
    assert t1["service"] == "city" and t1["service_path"] == "/"
    assert t1["protocol"] == "PDI-IoTA-UltraLight" and t1["transport"] == "HTTP"
    r = await iota.get("/iot/devices/t2", headers=CITY)
    assert r.status_code == 200 and r.json()["expectedInterval"] == 300
    assert r.json()["entity_name"] == "urn:ngsi-ld:Thermometer:kitchen"
    r = await iota.put("/iot/devices/t2", json={"entity_name": "urn:ngsi-ld:Thermometer:hall",
                                                "timestamp": False}, headers=CITY)
    assert r.status_code == 204, r.text
    got = (await iota.get("/iot/devices/t2", headers=CITY)).json()
    assert got["entity_name"].endswith(":hall") and got["timestamp"] is False
    assert got["expectedInterval"] == 300
    r = await iota.put("/iot/devices/t2", json={"device_id": "t3"}, headers=CITY)
    assert r.status_code == 400 and r.json()["name"] == "WRONG_SYNTAX"
    assert (await iota.delete("/iot/devices/t2", headers=CITY)).status_code == 204
    for method in ("GET", "PUT", "DELETE"):
        r = await iota.request(method, "/iot/devices/t2", json={}, headers=CITY)
        assert r.status_code == 404 and r.json() == {
            "name": "DEVICE_NOT_FOUND", "message": "No device was found with id:t2"}


async def test_device_scopes_duplicates_and_paging(iota: httpx.AsyncClient) -> None:
    await provision(iota, devices=[{"device_id": f"d{n}"} for n in range(5)])
    r = await iota.post("/iot/devices", json={"devices": [{"device_id": "d9"},
                                                          {"device_id": "d1"}]}, headers=CITY)
    assert r.status_code == 409 and r.json()["name"] == "DUPLICATE_DEVICE_ID"
    assert (await iota.get("/iot/devices/d9", headers=CITY)).status_code == 404  # none added
    r = await iota.get("/iot/devices", params={"limit": 2, "offset": 3}, headers=CITY)
    assert r.json()["count"] == 5 and [d["device_id"] for d in r.json()["devices"]] == [
        "d3", "d4"]
    d0 = (await iota.get("/iot/devices/d0", headers=CITY)).json()
    assert d0["entity_type"] == "Thing" and d0["entity_name"] == "urn:ngsi-ld:Thing:d0"
    assert "apikey" not in d0  # no group: no apikey, it cannot send measures
    assert (await iota.get("/iot/devices/d0", headers=SUB)).status_code == 404
    everywhere = {**CITY, "fiware-servicepath": "/*"}
    assert (await iota.get("/iot/devices/d0", headers=everywhere)).status_code == 200
    r = await iota.get("/iot/devices", headers={"fiware-service": "other"})
    assert r.json() == {"count": 0, "devices": []}
    r = await iota.get("/iot/devices", params={"limit": "many"}, headers=CITY)
    assert r.status_code == 400 and r.json()["name"] == "BAD_REQUEST"
    r = await iota.get("/iot/devices", params={"limit": 0}, headers=CITY)
    assert r.status_code == 400


async def test_deleting_a_group_with_its_devices(iota: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": "a", "apikey": "k1"},
                                          {"device_id": "b", "entity_type": "Lamp"},
                                          {"device_id": "c"}])  # c joins the only group
    r = await iota.delete("/iot/services", params={"apikey": "k1", "device": "true"},
                          headers=CITY)
    assert r.status_code == 204
    r = await iota.get("/iot/devices", headers=CITY)
    assert [d["device_id"] for d in r.json()["devices"]] == ["b"]  # b: no group, no apikey


BAD_GROUPS: list[tuple[str, Any]] = [
    ("no apikey", {"entity_type": "T"}),
    ("apikey with a slash", {"apikey": "a/b"}),
    ("apikey with a blank", {"apikey": "a b"}),
    ("apikey not text", {"apikey": 7}),
    ("attributes not a list", {"apikey": "k", "attributes": {"t": "Number"}}),
    ("attribute without name", {"apikey": "k", "attributes": [{"type": "Number"}]}),
    ("attribute named id", {"apikey": "k", "attributes": [{"name": "id", "type": "Text"}]}),
    ("attribute name with a quote", {"apikey": "k", "attributes": [{"name": "a\"b"}]}),
    ("bad expression", {"apikey": "k", "attributes": [{"name": "f", "expression": "t *"}]}),
    ("unknown transform", {"apikey": "k", "attributes": [{"name": "f",
                                                          "expression": "t|explode"}]}),
    ("static without value", {"apikey": "k", "static_attributes": [{"name": "c"}]}),
    ("static geo out of range", {"apikey": "k", "static_attributes": [
        {"name": "location", "type": "geo:json",
         "value": {"type": "Point", "coordinates": [200, 0]}}]}),
    ("static number that is not", {"apikey": "k", "static_attributes": [
        {"name": "floors", "type": "Integer", "value": "many"}]}),
    ("static relationship not a URI", {"apikey": "k", "static_attributes": [
        {"name": "refBuilding", "type": "Relationship", "value": "building 1"}]}),
    ("explicitAttrs of numbers", {"apikey": "k", "explicitAttrs": [1, 2]}),
    ("explicitAttrs bad expression", {"apikey": "k", "explicitAttrs": "['a'"}),
    ("unknown payload decoder", {"apikey": "k", "payload_decoder": "morse"}),
    ("negative expected interval", {"apikey": "k", "expectedInterval": -5}),
    ("autoprovision not a boolean", {"apikey": "k", "autoprovision": "yes"}),
    ("unitCode not text", {"apikey": "k", "attributes": [
        {"name": "t", "metadata": {"unitCode": {"type": "Text", "value": 12}}}]}),
    ("entity type with a blank", {"apikey": "k", "entity_type": "Air Quality"}),
    ("datasetId not a URI", {"apikey": "k", "attributes": [{"name": "t",
                                                            "datasetId": "one"}]}),
]


@pytest.mark.parametrize(("what", "group"), BAD_GROUPS, ids=[w for w, _ in BAD_GROUPS])
async def test_bad_groups_are_refused(iota: httpx.AsyncClient, what: str, group: Any) -> None:
    r = await iota.post("/iot/services", json={"services": [group]}, headers=CITY)
    assert r.status_code == 400, (what, r.text)
    assert r.json()["name"] == "WRONG_SYNTAX" and r.json()["message"]
    assert (await iota.get("/iot/services", headers=CITY)).json()["count"] == 0


BAD_DEVICES: list[tuple[str, Any]] = [
    ("no device_id", {"entity_type": "T"}),
    ("device_id with a hash", {"device_id": "a#b"}),
    ("device_id too long", {"device_id": "x" * 300}),
    ("entity_name not a URI", {"device_id": "d", "entity_name": "my sensor"}),
    ("protocol not text", {"device_id": "d", "protocol": 3}),
    ("timestamp not a boolean", {"device_id": "d", "timestamp": "yes"}),
]


@pytest.mark.parametrize(("what", "device"), BAD_DEVICES, ids=[w for w, _ in BAD_DEVICES])
async def test_bad_devices_are_refused(iota: httpx.AsyncClient, what: str, device: Any) -> None:
    r = await iota.post("/iot/devices", json={"devices": [device]}, headers=CITY)
    assert r.status_code == 400, (what, r.text)
    assert r.json()["name"] == "WRONG_SYNTAX"


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"services": []}',
                                  b'{"services": {}}', b'{"services": [1]}', b'"x"'])
async def test_malformed_bodies(iota: httpx.AsyncClient, body: bytes) -> None:
    for path in ("/iot/services", "/iot/devices"):
        r = await iota.post(path, content=body, headers=CITY)
        assert r.status_code == 400 and r.json()["name"] == "WRONG_SYNTAX", (path, r.text)


async def test_bad_headers_and_routes(iota: httpx.AsyncClient) -> None:
    r = await iota.get("/iot/devices", headers={"fiware-service": "bad service!"})
    assert r.status_code == 400 and r.json()["name"] == "BAD_REQUEST"
    r = await iota.get("/iot/devices", headers={"fiware-servicepath": "no-slash"})
    assert r.status_code == 400
    r = await iota.post("/iot/devices", json={"devices": [{"device_id": "d"}]},
                        headers={"fiware-servicepath": "/*"})  # a wildcard only reads
    assert r.status_code == 400
    r = await iota.get("/iot/nothing")
    assert r.status_code == 404 and r.json()["name"] == "NOT_FOUND"
    r = await iota.patch("/iot/devices")
    assert r.status_code == 405 and r.json()["name"] == "METHOD_NOT_ALLOWED"
    r = await iota.post("/iot/services", content=b"x" * 9_000_000, headers=CITY)
    assert r.status_code == 413 and r.json()["name"] == "REQUEST_TOO_LARGE"


async def test_about_and_health(iota: httpx.AsyncClient) -> None:
    about = (await iota.get("/iot/about")).json()
    assert about["port"] == "4041" and about["baseRoot"] == "/" and about["version"]
    assert (await iota.get("/health")).json()["status"] == "ok"
