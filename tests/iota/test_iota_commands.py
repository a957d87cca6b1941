"""Commands: a PATCH of a command attribute reaches the device (MQTT, HTTP push, polling)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest
from iota_helpers import THERMOMETERS, provision
from mqtt_helpers import attach, eventually, publish, unique

from urbis.agents.iot_agent import IotAgent

LD = {"NGSILD-Tenant": "city"}


async def _entity(client: httpx.AsyncClient, eid: str) -> dict[str, Any]:
    r = await client.get(f"/ngsi-ld/v1/entities/{eid}", headers=LD)
    return r.json() if r.status_code == 200 else {}


def _status(client: httpx.AsyncClient, eid: str, cmd: str, status: str,
            info: Any = None) -> Any:
    async def check() -> bool:
        e = await _entity(client, eid)
        ok = e.get(f"{cmd}_status", {}).get("value") == status
        return ok and (info is None or e.get(f"{cmd}_info", {}).get("value") == info)
    return check


async def _device(iota: httpx.AsyncClient, south: httpx.AsyncClient, **extra: Any
                  ) -> tuple[str, str]:
    key = unique("c")
    eid = f"urn:ngsi-ld:Thermometer:{key}"
    await provision(iota, [THERMOMETERS | {"apikey": key}],
                    [{"device_id": "t1", "entity_type": "Thermometer", "entity_name": eid,
                      "commands": [{"name": "switch", "type": "command"}], **extra}])
    r = await south.post("/iot/d", params={"k": key, "i": "t1"}, content="t|20")
    assert r.status_code == 200, r.text
    return key, eid


async def _patch(client: httpx.AsyncClient, eid: str, value: Any) -> None:
    r = await client.patch(f"/ngsi-ld/v1/entities/{eid}/attrs/switch",
                           json={"type": "Property", "value": value}, headers=LD)
    assert r.status_code == 204, r.text


@pytest.mark.parametrize("protocol", ["PDI-IoTA-UltraLight", "IoTA-JSON"])
async def test_mqtt_command_round_trip(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                       client: httpx.AsyncClient, agent: IotAgent,
                                       protocol: str) -> None:
    key, eid = await _device(iota, south, protocol=protocol, transport="MQTT")
    e = await _entity(client, eid)
    assert e["switch"]["value"] == "" and e["switch_status"]["value"] == "UNKNOWN"
    await attach(agent)
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=unique("dev-")) as device:
        await device.subscribe(f"/{key}/t1/cmd", qos=1)
        await _patch(client, eid, "on")
        message = await asyncio.wait_for(anext(aiter(device.messages)), 10)
    json = protocol == "IoTA-JSON"
    assert message.payload == (b'{"switch":"on"}' if json else b"t1@switch|on")
    await eventually(_status(client, eid, "switch", "SENT"))
    await publish(f"/{key}/t1/cmdexe", b'{"switch":"done"}' if json else b"t1@switch|done")
    await eventually(_status(client, eid, "switch", "OK", "done"))


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A device's HTTP endpoint: records bodies, answers `t1@switch|<body>-done`."""
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        body = await reader.readexactly(length)
        got.append(body)
        answer = b"t1@switch|" + body.split(b"|")[-1] + b"-done"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (len(answer), answer))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/cmd", got
    server.close()


async def test_http_push(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                         client: httpx.AsyncClient, agent: IotAgent,
                         receiver: tuple[str, list[bytes]]) -> None:
    url, got = receiver
    _, eid = await _device(iota, south, endpoint=url, protocol="PDI-IoTA-UltraLight")
    await _patch(client, eid, "on")
    await eventually(_status(client, eid, "switch", "OK", "on-done"))
    assert got == [b"t1@switch|on"]


async def test_http_push_unreachable(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                     client: httpx.AsyncClient, agent: IotAgent) -> None:
    _, eid = await _device(iota, south, endpoint="http://127.0.0.1:9/x")
    await _patch(client, eid, "on")
    await eventually(_status(client, eid, "switch", "ERROR"))
    assert "ConnectError" in (await _entity(client, eid))["switch_info"]["value"]


async def test_polling(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                       client: httpx.AsyncClient, agent: IotAgent) -> None:
    key, eid = await _device(iota, south, transport="HTTP")
    await client.patch(f"/ngsi-ld/v1/entities/{eid}/attrs",
                       json={"switch": {"type": "Property", "value": {"level": 3}}},
                       headers=LD)
    await eventually(_status(client, eid, "switch", "PENDING"))
    r = await south.get("/iot/d", params={"k": key, "i": "t1", "getCmd": "1"})
    assert r.status_code == 200 and r.text == "t1@switch|level=3"
    assert (await _entity(client, eid))["switch_status"]["value"] == "SENT"
    r = await south.get("/iot/d", params={"k": key, "i": "t1", "getCmd": "1"})
    assert r.status_code == 200 and r.text == ""  # taken
    r = await south.post("/iot/d", params={"k": key, "i": "t1"}, content="t1@switch|ok")
    assert r.status_code == 200, r.text
    await eventually(_status(client, eid, "switch", "OK", "ok"))
    r = await south.post("/iot/d", params={"k": key, "i": "zz"}, content="zz@switch|ok")
    assert r.status_code == 404
    r = await south.get("/iot/d", params={"getCmd": "1"})
    assert r.status_code == 400


async def test_patch_of_other_attributes_sends_nothing(iota: httpx.AsyncClient,
                                                       south: httpx.AsyncClient,
                                                       client: httpx.AsyncClient,
                                                       agent: IotAgent) -> None:
    key, eid = await _device(iota, south, transport="HTTP")
    r = await client.patch(f"/ngsi-ld/v1/entities/{eid}/attrs/temperature",
                           json={"type": "Property", "value": 1}, headers=LD)
    assert r.status_code == 204
    assert await agent.commands.poll(key, "t1") == ""


async def test_bad_cmdexe_and_configuration(iota: httpx.AsyncClient, south: httpx.AsyncClient,
                                            client: httpx.AsyncClient, agent: IotAgent) -> None:
    key, eid = await _device(iota, south, protocol="IoTA-JSON", transport="MQTT")
    await attach(agent)
    await publish(f"/{key}/t1/cmdexe", b"{not json")
    await publish(f"/{key}/nobody/cmdexe", b'{"switch": "x"}')
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=unique("dev-")) as device:
        await device.subscribe(f"/{key}/t1/configuration/values", qos=1)
        await publish(f"/{key}/t1/configuration/commands",
                      b'{"type": "configuration", "fields": ["temperature", "nothing"]}')
        message = await asyncio.wait_for(anext(aiter(device.messages)), 10)
    answer = orjson.loads(message.payload)  # type: ignore[arg-type]
    assert answer["temperature"] == 20 and answer["nothing"] is None
    assert answer["type"] == "configuration" and answer["dt"].endswith("Z")

    async def letters() -> bool:
        await agent.dead_letters.flush()
        r = await iota.get("/iot/deadletter", headers={"fiware-service": "city"})
        got = {(d["device_id"], d["reason"]) for d in r.json()["deadletters"]}
        return ("t1", "syntax") in got
    await eventually(letters)
    assert (await _entity(client, eid))["switch_status"]["value"] == "UNKNOWN"
