"""Device health: a device silent past its expectedInterval goes offline, then online."""

from __future__ import annotations

import time
from typing import Any

import httpx
from iota_helpers import THERMOMETERS, provision
from mqtt_helpers import eventually, unique

from urbis.agents.health import expected_interval
from urbis.agents.iot_agent import IotAgent

LD = {"NGSILD-Tenant": "city"}


async def _state(client: httpx.AsyncClient, eid: str) -> Any:
    r = await client.get(f"/ngsi-ld/v1/entities/{eid}", headers=LD)
    return r.json().get("deviceState", {}).get("value")


async def test_silent_device_goes_offline_and_back(iota: httpx.AsyncClient,
                                                   south: httpx.AsyncClient,
                                                   client: httpx.AsyncClient,
                                                   agent: IotAgent) -> None:
    key = unique("h")
    await provision(iota, [THERMOMETERS | {"apikey": key, "expectedInterval": 0.5}],
                    [{"device_id": "d1", "entity_type": "Thermometer"},
                     {"device_id": "d2", "entity_type": "Thermometer", "expectedInterval": 3600}])
    for dev in ("d1", "d2"):
        r = await south.post("/iot/d", params={"k": key, "i": dev}, content="t|1")
        assert r.status_code == 200
    await agent.health.close()
    agent.health.interval = 0.1
    agent.health.start()
    d1, d2 = "urn:ngsi-ld:Thermometer:d1", "urn:ngsi-ld:Thermometer:d2"
    await eventually(lambda: _is(client, d1, "offline"))
    assert await _state(client, d2) is None  # within its own (device) interval
    r = await south.post("/iot/d", params={"k": key, "i": "d1"}, content="t|2")
    assert r.status_code == 200
    await eventually(lambda: _is(client, d1, "online"))


async def test_check_is_idempotent(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                   agent: IotAgent) -> None:
    key = unique("h")
    await provision(iota, [THERMOMETERS | {"apikey": key}],
                    [{"device_id": "d1", "entity_type": "Thermometer", "expectedInterval": 10},
                     {"device_id": "d9", "entity_type": "Thermometer"}])
    for dev in ("d1", "d9"):
        assert (await south.post("/iot/d", params={"k": key, "i": dev},
                                 content="t|1")).status_code == 200
    assert await agent.health.check(time.time()) == []
    later = time.time() + 60
    assert await agent.health.check(later) == [("city", "d1")]  # d9 has no interval
    assert await agent.health.check(later) == []  # already offline


async def test_bad_interval_is_refused(iota: httpx.AsyncClient) -> None:
    r = await iota.post("/iot/devices", json={"devices": [
        {"device_id": "x", "expectedInterval": "soon"}]}, headers={"fiware-service": "city"})
    assert r.status_code == 400


async def _is(client: httpx.AsyncClient, eid: str, state: str) -> bool:
    return bool(await _state(client, eid) == state)


def test_expected_interval_of_plan() -> None:
    class P:  # the two members expected_interval reads
        def __init__(self, device: dict[str, Any], group: dict[str, Any] | None) -> None:
            self.device = type("D", (), {"body": device})()
            self.group = type("G", (), {"body": group})() if group is not None else None
    assert expected_interval(P({"expectedInterval": 5}, None)) == 5.0  # type: ignore[arg-type]
    assert expected_interval(P({}, {"expectedInterval": 2.5})) == 2.5  # type: ignore[arg-type]
    assert expected_interval(P({}, None)) is None  # type: ignore[arg-type]
