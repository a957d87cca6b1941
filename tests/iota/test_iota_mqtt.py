"""MQTT measures through the local Mosquitto into entities (JSON, UltraLight, QoS 0 and 1)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from iota_helpers import CITY, THERMOMETERS, provision
from mqtt_helpers import attach, eventually, publish, unique

from urbis.agents.iot_agent import IotAgent
from urbis.agents.mqtt import MqttTransport
from urbis.agents.mqtt_embedded import EmbeddedBroker
from urbis.agents.mqtt_topics import format_of, parse, subscriptions
from urbis.context.errors import ServiceUnavailable

LD = {"NGSILD-Tenant": "city"}


async def _value(client: httpx.AsyncClient, entity_id: str, attr: str) -> Any:
    r = await client.get(f"/ngsi-ld/v1/entities/{entity_id}", headers=LD)
    if r.status_code != 200 or attr not in r.json():
        return None
    return r.json()[attr].get("value")


async def _setup(iota: httpx.AsyncClient, protocol: str | None = None) -> str:
    key = unique("k")
    device: dict[str, Any] = {"device_id": "t1", "entity_type": "Thermometer",
                              "entity_name": f"urn:ngsi-ld:Thermometer:{key}"}
    if protocol:
        device["protocol"] = protocol
    await provision(iota, [THERMOMETERS | {"apikey": key}], [device])
    return key


async def test_ultralight_and_json_qos1(iota: httpx.AsyncClient, client: httpx.AsyncClient,
                                        agent: IotAgent) -> None:
    key = await _setup(iota, "PDI-IoTA-UltraLight")
    eid = f"urn:ngsi-ld:Thermometer:{key}"
    await attach(agent)
    await publish(f"/{key}/t1/attrs", "t|25.5|s|ok")
    await eventually(lambda: _has(client, eid, "temperature", 25.5))
    assert await _value(client, eid, "status") == "ok"
    await publish(f"/json/{key}/t1/attrs", b'{"t": 26.5}')  # the prefix names the format
    await eventually(lambda: _has(client, eid, "temperature", 26.5))
    await publish(f"{key}/t1/attrs/t", "27")  # no leading slash, one attribute
    await eventually(lambda: _has(client, eid, "temperature", 27))
    await publish(f"/ul/{key}/t1/attrs", "t|28", qos=0)
    await eventually(lambda: _has(client, eid, "temperature", 28))


async def test_json_device_without_prefix(iota: httpx.AsyncClient, client: httpx.AsyncClient,
                                          agent: IotAgent) -> None:
    key = await _setup(iota, "IoTA-JSON")
    await attach(agent)
    await publish(f"/{key}/t1/attrs", b'{"t": 19, "s": "fine"}', qos=0)
    await eventually(lambda: _has(client, f"urn:ngsi-ld:Thermometer:{key}", "status", "fine"))


async def test_bad_messages_are_dead_letters(iota: httpx.AsyncClient, client: httpx.AsyncClient,
                                             agent: IotAgent) -> None:
    key = await _setup(iota)
    await attach(agent)
    await publish(f"/json/{key}/t1/attrs", b'{"t": ')  # not JSON
    await publish(f"/json/{key}/t1/attrs", b'{"t": "hot"}')  # not a number
    await publish(f"/{unique('nokey')}/t1/attrs", "t|1")  # unknown apikey
    await publish(f"/{key}/t1/attrs", "t|30")  # the loop goes on
    eid = f"urn:ngsi-ld:Thermometer:{key}"
    await eventually(lambda: _has(client, eid, "temperature", 30))

    async def three() -> bool:
        await agent.dead_letters.flush()
        r = await iota.get("/iot/deadletter", params={"device_id": "t1"}, headers=CITY)
        reasons = {d["reason"] for d in r.json()["deadletters"] if d["transport"] == "mqtt"}
        return {"syntax", "invalid_value"} <= reasons
    await eventually(three)


async def test_unknown_device_autoprovisioned(iota: httpx.AsyncClient,
                                              client: httpx.AsyncClient,
                                              agent: IotAgent) -> None:
    key = await _setup(iota)
    await attach(agent)
    await publish(f"/{key}/newdev/attrs", "t|12")
    await eventually(lambda: _has(client, "urn:ngsi-ld:Thermometer:newdev", "temperature", 12))


async def _has(client: httpx.AsyncClient, eid: str, attr: str, value: Any) -> bool:
    return bool(await _value(client, eid, attr) == value)


def test_topics() -> None:
    t = parse("/json/k/d/attrs/temp")
    assert t is not None and (t.format, t.apikey, t.device_id, t.attr) == \
        ("json", "k", "d", "temp")
    assert parse("k/d/cmdexe").kind == "cmdexe"  # type: ignore[union-attr]
    assert parse("/k/d/configuration/commands").kind == "configuration"  # type: ignore[union-attr]
    assert parse("/k/d/other") is None and parse("/k//attrs") is None and parse("x") is None
    assert format_of("PDI-IoTA-UltraLight", b"{") == "ultralight"
    assert format_of("IoTA-JSON", b"t|1") == "json"
    assert format_of(None, b' {"a":1}') == "json" and format_of(None, b"t|1") == "ultralight"
    assert "$share/g//+/+/attrs" in subscriptions("g")


async def test_embedded_broker(iota: httpx.AsyncClient,
                                                     client: httpx.AsyncClient,
                                                     agent: IotAgent) -> None:
    key = await _setup(iota)
    embedded = EmbeddedBroker()
    await embedded.start()
    try:  # amqtt speaks MQTT 3.1.1 only
        transport = MqttTransport(embedded.url, agent.ingest, client_id=unique("t-"), v5=False)
        agent.use_mqtt(transport)
        transport.start()
        await asyncio.wait_for(transport.connected.wait(), 10)
        async with aiomqtt.Client("127.0.0.1", embedded.port) as device:
            await device.publish(f"/{key}/t1/attrs", b"t|31", qos=1)
        await eventually(lambda: _has(client, f"urn:ngsi-ld:Thermometer:{key}",
                                      "temperature", 31))
        await transport.close()
    finally:
        await embedded.close()


async def test_reconnects_when_the_broker_comes_up(iota: httpx.AsyncClient,
                                                   client: httpx.AsyncClient,
                                                   agent: IotAgent) -> None:
    embedded = EmbeddedBroker()  # not started yet: the port refuses connections
    transport = MqttTransport(embedded.url, agent.ingest, client_id=unique("t-"), v5=False)
    agent.use_mqtt(transport)
    transport.start()
    await asyncio.sleep(0.3)
    assert not transport.connected.is_set()
    with pytest.raises(ConnectionError):
        await transport.publish("/x/y/cmd", b"x")
    await embedded.start()
    try:
        await asyncio.wait_for(transport.connected.wait(), 10)  # the 1 s backoff
    finally:
        await transport.close()
        await embedded.close()


async def test_qos1_unwritten_message_is_delivered_again(iota: httpx.AsyncClient,
                                                         client: httpx.AsyncClient,
                                                         agent: IotAgent) -> None:
    key = await _setup(iota)
    eid = f"urn:ngsi-ld:Thermometer:{key}"
    queue = agent.ingest.queue
    real = queue.write
    failed: list[int] = []

    async def store_down_once(tenant: str, items: list[Any]) -> None:
        if not failed:
            failed.append(len(items))
            raise ServiceUnavailable("the store is down")
        await real(tenant, items)

    queue.write = store_down_once
    transport = await attach(agent)
    await publish(f"/{key}/t1/attrs", "t|41")
    # not acknowledged: the agent reconnects and Mosquitto sends the message again
    await eventually(lambda: _has(client, eid, "temperature", 41))
    assert failed == [1] and transport.connected.is_set()


@given(st.text(max_size=80))
def test_parse_never_raises(topic: str) -> None:
    found = parse(topic)
    assert found is None or (found.apikey and found.device_id and "/" not in found.apikey)


@given(st.sampled_from(["", "/", "/json/", "/ul/", "json/"]),
       st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
       st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True))
def test_parse_round_trip(prefix: str, apikey: str, device: str) -> None:
    found = parse(f"{prefix}{apikey}/{device}/attrs")
    assert found is not None and (found.apikey, found.device_id) == (apikey, device)
    assert found.format == {"/json/": "json", "json/": "json", "/ul/": "ultralight"}.get(
        prefix, "auto")


async def test_shared_subscription(iota: httpx.AsyncClient, client: httpx.AsyncClient,
                                   agent: IotAgent) -> None:
    key = await _setup(iota)
    transport = await attach(agent, shared=True)  # as each of `--workers N` does
    assert transport.session_expiry == 0 and transport.shared
    await publish(f"/{key}/t1/attrs", "t|17")
    await eventually(lambda: _has(client, f"urn:ngsi-ld:Thermometer:{key}", "temperature", 17))
