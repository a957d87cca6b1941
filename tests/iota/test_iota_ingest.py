"""Measures from the HTTP southbound to entities read back through the NGSI-LD API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from iota_helpers import CITY, THERMOMETERS, provision

from urbis.agents.ingest import Uplink
from urbis.agents.iot_agent import IotAgent
from urbis.broker.container import Broker

LD = {"NGSILD-Tenant": "city"}
T1 = "urn:ngsi-ld:Thermometer:t1"


async def entity(client: httpx.AsyncClient, entity_id: str, **params: Any) -> dict[str, Any]:
    r = await client.get(f"/ngsi-ld/v1/entities/{entity_id}", params=params, headers=LD)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_ultralight_end_to_end(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                     client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": "t1", "entity_type": "Thermometer"}])
    r = await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|25.3|s|ok|h|40")
    assert r.status_code == 200 and r.text == ""
    e = await entity(client, T1)
    assert e["type"] == "Thermometer"
    assert e["temperature"]["value"] == 25.3 and e["temperature"]["unitCode"] == "CEL"
    assert e["temperature"]["observedAt"].endswith("Z")
    assert e["status"]["value"] == "ok"
    assert e["h"]["value"] == "40"  # not provisioned: kept as sent (UltraLight is text)
    assert e["category"]["value"] == "sensor"
    assert e["location"] == {"type": "GeoProperty",
                             "value": {"type": "Point", "coordinates": [-3.7, 40.4]}}
    r = await south.get("/iot/d", params={"k": "k1", "i": "t1", "d": "t|26"})
    assert r.status_code == 200
    assert (await entity(client, T1))["temperature"]["value"] == 26


async def test_json_times_groups_and_history(iota: httpx.AsyncClient,
                                             south: httpx.AsyncClient,
                                             client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS | {"resource": "/iot/json"}],
                    [{"device_id": "t1", "apikey": "k1"}])
    r = await south.post("/iot/json", params={"k": "k1", "i": "t1"}, json=[
        {"t": 20, "TimeInstant": "2026-03-01T10:00:00+01:00"},
        {"t": "21.5", "TimeInstant": "2026-03-01T09:30:00Z"}])
    assert r.status_code == 200, r.text
    e = await entity(client, T1)
    assert e["temperature"]["value"] == 21.5  # each group is an update, in order
    assert e["temperature"]["observedAt"] == "2026-03-01T09:30:00Z"
    r = await south.post("/iot/json", params={"k": "k1", "i": "t1", "t": "2026-03-02T00:00:00Z"},
                         json={"t": 19, "extra": {"a": [1, 2]}})
    assert r.status_code == 200
    e = await entity(client, T1)
    assert e["temperature"]["observedAt"] == "2026-03-02T00:00:00Z"
    assert e["extra"]["value"] == {"a": [1, 2]}
    r = await client.get(f"/ngsi-ld/v1/temporal/entities/{T1}", headers=LD,
                         params={"attrs": "temperature"})
    assert r.status_code == 200, r.text
    values = sorted(i["value"] for i in r.json()["temperature"])
    assert values == [19, 20, 21.5]


async def test_single_attribute_posts(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                      client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": "t1", "apikey": "k1"}])
    r = await south.post("/iot/json/attrs/t", params={"k": "k1", "i": "t1"}, content=b"17.5")
    assert r.status_code == 200, r.text
    assert (await entity(client, T1))["temperature"]["value"] == 17.5


async def test_mapping_features(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                client: httpx.AsyncClient) -> None:
    group = {"apikey": "k5", "entity_type": "Bin", "attributes": [
        {"object_id": "f", "name": "fillingLevel", "type": "Number",
         "metadata": {"unitCode": "P1", "accuracy": {"type": "Number", "value": 0.5}}},
        {"object_id": "b", "name": "refBuilding", "type": "Relationship"},
        {"object_id": "lat", "name": "latitude", "type": "Number"},
        {"object_id": "lon", "name": "longitude", "type": "Number"},
        {"name": "location", "type": "geo:json",
         "expression": "{type: 'Point', coordinates: [longitude, latitude]}"},
        {"name": "full", "type": "Boolean", "expression": "fillingLevel > 80"},
        {"name": "percent", "type": "Integer", "expression": "round(fillingLevel)"},
        {"name": "never", "type": "Number", "expression": "unknownMeasure * 2"},
        {"object_id": "w", "name": "weight", "type": "Number", "datasetId": "urn:ngsi-ld:S:1"},
        {"object_id": "v", "name": "volume", "type": "Number",
         "entity_name": "urn:ngsi-ld:Truck:7", "entity_type": "Truck"},
        {"object_id": "d", "name": "emptiedAt", "type": "DateTime"},
        {"object_id": "o", "name": "open", "type": "Boolean"},
    ]}
    await provision(iota, [group])
    r = await south.post("/iot/d", params={"k": "k5", "i": "bin9"},
                         content="f|82.6|b|urn:ngsi-ld:Building:3|lat|40.4|lon|-3.7|w|12"
                                 "|v|3|d|2026-01-01T08:00:00Z|o|true")
    assert r.status_code == 200, r.text
    e = await entity(client, "urn:ngsi-ld:Bin:bin9")  # autoprovisioned
    level = e["fillingLevel"]
    assert level["value"] == 82.6 and level["unitCode"] == "P1"
    assert level["accuracy"] == {"type": "Property", "value": 0.5}
    assert e["refBuilding"] == {"type": "Relationship", "object": "urn:ngsi-ld:Building:3",
                                "observedAt": level["observedAt"]}
    assert e["location"]["value"] == {"type": "Point", "coordinates": [-3.7, 40.4]}
    assert e["full"]["value"] is True and e["percent"]["value"] == 83
    assert "never" not in e  # its variable was not measured
    assert e["weight"]["datasetId"] == "urn:ngsi-ld:S:1"
    assert e["emptiedAt"]["value"] == {"@type": "DateTime", "@value": "2026-01-01T08:00:00Z"}
    assert e["open"]["value"] is True
    assert "volume" not in e
    truck = await entity(client, "urn:ngsi-ld:Truck:7")
    assert truck["type"] == "Truck" and truck["volume"]["value"] == 3


async def test_explicit_attrs_and_timestamp_off(iota: httpx.AsyncClient,
                                                south: httpx.AsyncClient,
                                                client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS | {"explicitAttrs": True, "timestamp": False}], [
        {"device_id": "t1", "apikey": "k1"},
        {"device_id": "t2", "apikey": "k1", "explicitAttrs": "['temperature']"},
        {"device_id": "t3", "apikey": "k1", "explicitAttrs": "h > 50 ? true : ['status']",
         "timestamp": True}])
    for device in ("t1", "t2", "t3"):
        r = await south.post("/iot/d", params={"k": "k1", "i": device}, content="t|20|s|on|h|40")
        assert r.status_code == 200, r.text
    t1 = await entity(client, T1)
    assert set(t1) >= {"temperature", "status", "category", "location"} and "h" not in t1
    assert "observedAt" not in t1["temperature"]
    t2 = await entity(client, "urn:ngsi-ld:Thermometer:t2")
    assert "temperature" in t2 and not {"status", "h", "category"} & set(t2)
    t3 = await entity(client, "urn:ngsi-ld:Thermometer:t3")
    assert "status" in t3 and not {"temperature", "h"} & set(t3)
    assert t3["status"]["observedAt"]
    r = await south.post("/iot/d", params={"k": "k1", "i": "t3"}, content="t|20|h|60")
    t3 = await entity(client, "urn:ngsi-ld:Thermometer:t3")
    assert t3["h"]["value"] == "60" and t3["temperature"]["value"] == 20


async def test_static_attributes_follow_provisioning(iota: httpx.AsyncClient,
                                                     south: httpx.AsyncClient,
                                                     client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": "t1", "apikey": "k1"}])
    await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|1")
    created = (await entity(client, T1, options="sysAttrs"))["category"]["modifiedAt"]
    await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|2")
    same = (await entity(client, T1, options="sysAttrs"))["category"]["modifiedAt"]
    assert same == created  # an unchanged static is not written again
    statics = [{"name": "category", "type": "Text", "value": "thermometer"}]
    r = await iota.put("/iot/devices/t1", json={"static_attributes": statics}, headers=CITY)
    assert r.status_code == 204
    await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|3")
    assert (await entity(client, T1))["category"]["value"] == "thermometer"


async def test_autoprovision_and_unknown_devices(iota: httpx.AsyncClient,
                                                 south: httpx.AsyncClient,
                                                 client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS, {"apikey": "closed", "entity_type": "Meter",
                                          "autoprovision": False}])
    replies = await asyncio.gather(*[
        south.post("/iot/d", params={"k": "k1", "i": "new"}, content=f"t|{n}")
        for n in range(20)])
    assert {r.status_code for r in replies} == {200}
    r = await iota.get("/iot/devices/new", headers=CITY)
    assert r.status_code == 200 and r.json()["apikey"] == "k1"
    assert r.json()["entity_name"] == "urn:ngsi-ld:Thermometer:new"
    assert (await entity(client, "urn:ngsi-ld:Thermometer:new"))["category"]["value"] == "sensor"
    r = await south.post("/iot/d", params={"k": "closed", "i": "m1"}, content="t|1")
    assert r.status_code == 404 and r.json()["name"] == "DEVICE_NOT_FOUND"
    r = await south.post("/iot/d", params={"k": "nokey", "i": "m1"}, content="t|1")
    assert r.status_code == 404 and r.json()["name"] == "DEVICE_GROUP_NOT_FOUND"
    r = await client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Meter:m1", headers=LD)
    assert r.status_code == 404
    letters = (await iota.get("/iot/deadletter", headers=CITY)).json()["deadletters"]
    assert [(x["reason"], x["service"]) for x in letters] == [
        ("unknown_apikey", None), ("unknown_device", "city")]  # newest first
    r = await iota.get("/iot/deadletter", headers={"fiware-service": "other"})
    assert [x["reason"] for x in r.json()["deadletters"]] == ["unknown_apikey"]


async def test_provisioning_changes_reach_the_pipeline(iota: httpx.AsyncClient,
                                                       south: httpx.AsyncClient,
                                                       client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": "t1", "apikey": "k1"}])
    await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|1")
    attrs = [{"object_id": "t", "name": "airTemperature", "type": "Number"}]
    assert (await iota.put("/iot/devices/t1", json={"attributes": attrs},
                           headers=CITY)).status_code == 204
    await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|2")
    assert (await entity(client, T1))["airTemperature"]["value"] == 2
    assert (await iota.delete("/iot/devices/t1", headers=CITY)).status_code == 204
    await iota.put("/iot/services", params={"apikey": "k1"}, json={"autoprovision": False},
                   headers=CITY)
    r = await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|3")
    assert r.status_code == 404


async def test_last_seen_is_recorded(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                     agent: IotAgent) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": "t1", "apikey": "k1"}])
    assert (await iota.get("/iot/devices/t1", headers=CITY)).json().get("lastSeen") is None
    await south.post("/iot/d", params={"k": "k1", "i": "t1"}, content="t|1")
    seen = agent.ingest.last_seen("city", "t1")
    assert seen is not None
    await agent.ingest.save_seen()
    assert (await iota.get("/iot/devices/t1", headers=CITY)).json()["lastSeen"] == seen


async def test_messages_share_transactions(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                           client: httpx.AsyncClient, agent: IotAgent,
                                           broker: Broker, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": f"t{n}", "apikey": "k1"}
                                           for n in range(10)])
    batches: list[int] = []
    run_batch = broker.entities.run_batch

    async def counting(actor: Any, mutations: Any, errors: Any) -> Any:
        batches.append(len(mutations))
        return await run_batch(actor, mutations, errors)

    monkeypatch.setattr(broker.entities, "run_batch", counting)
    replies = await asyncio.gather(*[
        south.post("/iot/d", params={"k": "k1", "i": f"t{n % 10}"}, content=f"t|{n}")
        for n in range(300)])
    assert {r.status_code for r in replies} == {200}
    assert sum(batches) == 300 and len(batches) < 100, batches
    r = await client.get(f"/ngsi-ld/v1/temporal/entities/{T1}", headers=LD,
                         params={"attrs": "temperature", "lastN": 1000})
    history = [i["value"] for i in r.json()["temperature"]]
    assert sorted(history) == list(range(1, 300, 10))  # every message of t1, none merged


async def test_messages_are_written_in_the_order_they_are_queued(
        iota: httpx.AsyncClient, agent: IotAgent, client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": "t1", "apikey": "k1"}])
    for n in range(200):  # as a transport reading one connection does
        assert await agent.ingest.post(Uplink("k1", "t1", f"t|{n}", format="ultralight"))
    await agent.ingest.submit(Uplink("k1", "t1", "s|done", format="ultralight"))
    e = await entity(client, T1)
    assert e["temperature"]["value"] == 199 and e["status"]["value"] == "done"


async def test_fire_and_forget(iota: httpx.AsyncClient, agent: IotAgent,
                               client: httpx.AsyncClient) -> None:
    await provision(iota, [THERMOMETERS], [{"device_id": "t1", "apikey": "k1"}])
    assert await agent.ingest.post(Uplink("k1", "t1", b"t|5", format="ultralight",
                                          transport="mqtt"))
    assert not await agent.ingest.post(Uplink("k1", "t1", b"t|x", format="ultralight",
                                              transport="mqtt"))
    for _ in range(100):
        r = await client.get(f"/ngsi-ld/v1/entities/{T1}", headers=LD)
        if r.status_code == 200:
            break
        await asyncio.sleep(0.01)
    assert r.json()["temperature"]["value"] == 5


async def test_payload_decoder_and_decoded_measures(iota: httpx.AsyncClient,
                                                    south: httpx.AsyncClient,
                                                    agent: IotAgent,
                                                    client: httpx.AsyncClient) -> None:
    await provision(iota, [{"apikey": "lpp", "entity_type": "Node",
                            "payload_decoder": "cayenne"}])
    r = await south.post("/iot/json", params={"k": "lpp", "i": "n1"},
                         content=bytes.fromhex("036700EB0568 64".replace(" ", "")))
    assert r.status_code == 200, r.text
    node = await entity(client, "urn:ngsi-ld:Node:n1")
    assert node["temperature_3"]["value"] == 23.5 and node["temperature_3"]["unitCode"] == "CEL"
    assert node["relative_humidity_5"]["value"] == 50.0
    from urbis.decoders.base import Measurement

    written = await agent.ingest.submit(Uplink("lpp", "n1", measurements=[
        Measurement("rssi", -80, observed_at="2026-01-01T00:00:00Z")], transport="lorawan"))
    assert written == 1
    node = await entity(client, "urn:ngsi-ld:Node:n1")
    assert node["rssi"] == {"type": "Property", "value": -80,
                            "observedAt": "2026-01-01T00:00:00Z"}
