"""Notifications end to end through the API, on every backend, to a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from notify_receiver import Receiver
from urbis.api.app import create_app
from urbis.broker.container import Broker, build_broker
from urbis.context.jsonld import CORE_CONTEXT_URL
from urbis.settings import Settings


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Settings with quick retries and polling."""
    return dataclasses.replace(settings, notify_retry_first=0.05, notify_retry_max=0.2,
                               notify_max_attempts=3, notify_poll_interval=0.05,
                               notify_timeout=5.0)


@pytest.fixture
async def nbroker(fast: Settings) -> AsyncIterator[Broker]:
    """A broker whose notifier runs."""
    b = await build_broker(fast)
    await b.notifier.start()
    yield b
    await b.close()


@pytest.fixture
async def api(fast: Settings, nbroker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on that broker."""
    app = create_app(fast, broker=nbroker)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://urbis.test/ngsi-ld/v1"
                                 ) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that is up."""
    r = Receiver().up()
    yield r
    r.close()


async def subscribe(api: httpx.AsyncClient, uri: str, **members: Any) -> str:
    """Create a subscription on Vehicle entities (members override); its id."""
    body: dict[str, Any] = {"type": "Subscription", "entities": [{"type": "Vehicle"}],
                            "notification": {"endpoint": {"uri": uri}}}
    notification = members.pop("notification", {})
    body.update(members)
    body["notification"].update(notification)
    r = await api.post("/subscriptions", json=body)
    assert r.status_code == 201, r.text
    return str(r.headers["Location"].rsplit("/", 1)[1])


def vehicle(n: int | str, speed: int = 10, **attrs: Any) -> dict[str, Any]:
    """A Vehicle entity."""
    return {"id": f"urn:ngsi-ld:Vehicle:{n}", "type": "Vehicle",
            "speed": {"type": "Property", "value": speed}, **attrs}


async def subscription(api: httpx.AsyncClient, sub_id: str) -> dict[str, Any]:
    """GET a subscription."""
    r = await api.get(f"/subscriptions/{sub_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def until(check: Any, timeout: float = 10.0) -> Any:
    """Poll an async check until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_entity_creation_is_notified(api: httpx.AsyncClient, receiver: Receiver) -> None:
    sub_id = await subscribe(api, receiver.url())
    assert (await api.post("/entities", json=vehicle(1))).status_code == 201
    await receiver.until(lambda r: len(r.received) == 1)
    got = receiver.received[0]
    note = got.body
    assert note["id"].startswith("urn:ngsi-ld:Notification:")
    assert note["type"] == "Notification"
    assert note["subscriptionId"] == sub_id
    assert note["notifiedAt"].endswith("Z")
    assert note["data"] == [vehicle(1)]
    assert got.headers["content-type"] == "application/json"
    assert "ngsi-ld-core-context" in got.headers["link"]

    async def counted() -> dict[str, Any] | None:
        sub = await subscription(api, sub_id)
        return sub if sub["notification"].get("timesSent") == 1 else None

    sub = await until(counted)
    assert sub["notification"]["status"] == "ok" and sub["status"] == "active"
    assert "lastSuccess" in sub["notification"] and "lastNotification" in sub["notification"]


async def test_watched_attributes_and_triggers(api: httpx.AsyncClient, receiver: Receiver
                                               ) -> None:
    await api.post("/entities", json=vehicle(2, color={"type": "Property", "value": "red"}))
    await subscribe(api, receiver.url(), watchedAttributes=["speed"],
                    notificationTrigger=["attributeUpdated"])
    eid = "urn:ngsi-ld:Vehicle:2"
    r = await api.patch(f"/entities/{eid}/attrs", json={"color": {"type": "Property",
                                                                   "value": "blue"}})
    assert r.status_code == 204, r.text
    await api.post(f"/entities/{eid}/attrs", json={"new": {"type": "Property", "value": 1}})
    await api.patch(f"/entities/{eid}/attrs/speed", json={"value": 99})
    await receiver.until(lambda r: len(r.received) >= 1)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1
    note = receiver.received[0].body
    assert note["data"][0]["speed"]["value"] == 99
    assert note["triggerReason"] == "attributeUpdated"


async def test_entity_deleted_and_purge(api: httpx.AsyncClient, receiver: Receiver) -> None:
    for n in (3, 4, 5):
        await api.post("/entities", json=vehicle(n))
    await subscribe(api, receiver.url(), notificationTrigger=["entityDeleted"])
    assert (await api.delete("/entities/urn:ngsi-ld:Vehicle:3")).status_code == 204
    assert (await api.delete("/entities", params={"type": "Vehicle"})).status_code in (200, 204)
    # one notification per write, or one for both when the notifier claims them together
    await receiver.until(lambda r: delivered(r) == 3)
    ids = sorted(e["id"] for b in receiver.bodies() for e in b["data"])
    assert ids == [f"urn:ngsi-ld:Vehicle:{n}" for n in (3, 4, 5)]
    assert all("deletedAt" in e for b in receiver.bodies() for e in b["data"])


async def test_q_geo_and_scope(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await subscribe(api, receiver.url(), q="speed>50", scopeQ="/Madrid/#",
                    geoQ={"georel": "near;maxDistance==1000", "geometry": "Point",
                          "coordinates": [-3.7, 40.4]})
    near = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-3.7, 40.401]}}
    far = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [2.1, 41.4]}}
    await api.post("/entities", json=vehicle("slow", 10, location=near, scope="/Madrid/C"))
    await api.post("/entities", json=vehicle("far", 90, location=far, scope="/Madrid/C"))
    await api.post("/entities", json=vehicle("other", 90, location=near, scope="/Sevilla"))
    await api.post("/entities", json=vehicle("yes", 90, location=near, scope="/Madrid/C"))
    await receiver.until(lambda r: len(r.received) >= 1)
    await asyncio.sleep(0.3)
    assert [b["data"][0]["id"] for b in receiver.bodies()] == ["urn:ngsi-ld:Vehicle:yes"]


async def test_formats_show_changes_and_ld_json(api: httpx.AsyncClient, receiver: Receiver
                                                ) -> None:
    await subscribe(api, receiver.url("/kv"), notification={
        "format": "keyValues", "attributes": ["speed"],
        "endpoint": {"uri": receiver.url("/kv"), "accept": "application/ld+json"}})
    await subscribe(api, receiver.url("/changes"), notification={"showChanges": True,
                                                                "sysAttrs": True})
    await api.post("/entities", json=vehicle(6, 10, color={"type": "Property", "value": "red"}))
    await api.patch("/entities/urn:ngsi-ld:Vehicle:6/attrs/speed", json={"value": 20})
    await receiver.until(lambda r: len(r.bodies("/kv")) == 2 and len(r.bodies("/changes")) == 2)
    kv = receiver.bodies("/kv")[1]
    assert kv["@context"] == CORE_CONTEXT_URL
    assert kv["data"] == [{"id": "urn:ngsi-ld:Vehicle:6", "type": "Vehicle", "speed": 20}]
    changed = receiver.bodies("/changes")[1]["data"][0]
    assert changed["speed"]["value"] == 20 and changed["speed"]["previousValue"] == 10
    assert "previousValue" not in changed["color"] and "modifiedAt" in changed


async def test_attribute_deleted_is_ngsi_ld_null(api: httpx.AsyncClient, receiver: Receiver
                                                 ) -> None:
    await api.post("/entities", json=vehicle(7, color={"type": "Property", "value": "red"}))
    await subscribe(api, receiver.url(), notificationTrigger=["attributeDeleted"])
    r = await api.delete("/entities/urn:ngsi-ld:Vehicle:7/attrs/color")
    assert r.status_code == 204, r.text
    await receiver.until(lambda r: len(r.received) == 1)
    color = receiver.bodies()[0]["data"][0]["color"]
    assert color["value"] == "urn:ngsi-ld:null" and "deletedAt" in color


async def test_tenant_and_receiver_info_headers(api: httpx.AsyncClient, receiver: Receiver
                                                ) -> None:
    headers = {"NGSILD-Tenant": "city1"}
    body = {"type": "Subscription", "entities": [{"type": "Vehicle"}], "notification": {
        "endpoint": {"uri": receiver.url(), "receiverInfo": [{"key": "X-Api-Key",
                                                              "value": "secret"}]}}}
    assert (await api.post("/subscriptions", json=body, headers=headers)).status_code == 201
    await api.post("/entities", json=vehicle(8))  # the default tenant: not notified
    await api.post("/entities", json=vehicle(8), headers=headers)
    await receiver.until(lambda r: len(r.received) == 1)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1
    got = receiver.received[0].headers
    assert got["ngsild-tenant"] == "city1" and got["x-api-key"] == "secret"


async def test_failing_endpoint_is_retried_then_failed(api: httpx.AsyncClient,
                                                       receiver: Receiver) -> None:
    receiver.status = 500
    sub_id = await subscribe(api, receiver.url())
    await api.post("/entities", json=vehicle(9))

    async def failed() -> dict[str, Any] | None:
        sub = await subscription(api, sub_id)
        return sub if sub["status"] == "failed" else None

    sub = await until(failed)
    assert sub, "the subscription never showed failed"
    assert len(receiver.received) == 3  # notify_max_attempts
    assert sub["notification"]["timesSent"] == 3 and sub["notification"]["timesFailed"] == 3
    assert sub["notification"]["status"] == "failed" and "lastFailure" in sub["notification"]
    receiver.status = 200
    await api.patch("/entities/urn:ngsi-ld:Vehicle:9/attrs/speed", json={"value": 1})
    sub = await until(lambda: _status(api, sub_id, "active"))
    assert sub["notification"]["status"] == "ok"


async def _status(api: httpx.AsyncClient, sub_id: str, status: str) -> dict[str, Any] | None:
    sub = await subscription(api, sub_id)
    return sub if sub["status"] == status else None


async def test_down_endpoint_gets_it_when_back(api: httpx.AsyncClient, receiver: Receiver,
                                               nbroker: Broker) -> None:
    notifier = nbroker.notifier
    notifier.settings = dataclasses.replace(notifier.settings, notify_max_attempts=100)
    receiver.down()
    await subscribe(api, receiver.url())
    await api.post("/entities", json=vehicle(10))
    await asyncio.sleep(0.3)
    receiver.up()
    await receiver.until(lambda r: len(r.received) == 1)


def delivered(receiver: Receiver) -> int:
    """How many entities the receiver's notifications carried."""
    return sum(len(body["data"]) for body in receiver.bodies())


async def test_slow_endpoint_does_not_delay_a_fast_one(api: httpx.AsyncClient,
                                                       receiver: Receiver) -> None:
    slow = Receiver(delay=3.0).up()
    try:
        await subscribe(api, slow.url())
        await subscribe(api, receiver.url())
        started = time.monotonic()
        for n in range(40):
            await api.post("/entities", json=vehicle(f"s{n}"))
        # 40 entities, in one notification each or fewer carrying several (claimed together)
        await receiver.until(lambda r: delivered(r) == 40, timeout=2.5)
        assert time.monotonic() - started < 2.5
        await slow.until(lambda r: delivered(r) == 40, timeout=30)
    finally:
        slow.close()


async def test_paused_and_expired_are_not_notified(api: httpx.AsyncClient,
                                                   receiver: Receiver) -> None:
    paused = await subscribe(api, receiver.url("/paused"), isActive=False)
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1.5))
    expiring = await subscribe(api, receiver.url("/expiring"), expiresAt=soon)
    await api.post("/entities", json=vehicle(11))
    await receiver.until(lambda r: len(r.bodies("/expiring")) == 1)
    await asyncio.sleep(2)
    assert (await subscription(api, expiring))["status"] == "expired"
    assert (await subscription(api, paused))["status"] == "paused"
    await api.patch("/entities/urn:ngsi-ld:Vehicle:11/attrs/speed", json={"value": 5})
    await asyncio.sleep(0.5)
    assert receiver.bodies("/paused") == [] and len(receiver.bodies("/expiring")) == 1
    r = await api.patch(f"/subscriptions/{paused}", json={"isActive": True})
    assert r.status_code == 204
    await api.patch("/entities/urn:ngsi-ld:Vehicle:11/attrs/speed", json={"value": 6})
    await receiver.until(lambda r: len(r.bodies("/paused")) == 1)


async def test_periodic_and_throttled(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await api.post("/entities", json=vehicle(12))
    await subscribe(api, receiver.url("/periodic"), timeInterval=1)
    await subscribe(api, receiver.url("/throttled"), throttling=60)
    for n in range(5):
        await api.patch("/entities/urn:ngsi-ld:Vehicle:12/attrs/speed", json={"value": n})
    await receiver.until(lambda r: len(r.bodies("/periodic")) >= 2, timeout=5)
    assert receiver.bodies("/periodic")[0]["data"][0]["id"] == "urn:ngsi-ld:Vehicle:12"
    assert len(receiver.bodies("/throttled")) == 1


async def test_batch_upsert_gives_one_notification(api: httpx.AsyncClient,
                                                   receiver: Receiver) -> None:
    await subscribe(api, receiver.url())
    r = await api.post("/entityOperations/upsert", json=[vehicle(f"b{n}") for n in range(5)])
    assert r.status_code in (201, 204), r.text
    await receiver.until(lambda r: len(r.received) == 1)
    assert len(receiver.bodies()[0]["data"]) == 5


async def test_mqtt_endpoint(api: httpx.AsyncClient) -> None:
    aiomqtt = pytest.importorskip("aiomqtt")
    topic = f"urbis/test/{uuid.uuid4().hex[:8]}"
    try:
        client = aiomqtt.Client("127.0.0.1", 1883)
        await client.__aenter__()
    except aiomqtt.MqttError:
        pytest.skip("no MQTT broker on 127.0.0.1:1883")
    try:
        await client.subscribe(topic, qos=1)
        await subscribe(api, f"mqtt://127.0.0.1:1883/{topic}", notification={"endpoint": {
            "uri": f"mqtt://127.0.0.1:1883/{topic}",
            "notifierInfo": [{"key": "MQTT-QoS", "value": "1"},
                             {"key": "MQTT-Version", "value": "mqtt5.0"}]}})
        await api.post("/entities", json=vehicle(13))
        message = await asyncio.wait_for(anext(aiter(client.messages)), 10)
        payload = __import__("orjson").loads(message.payload)
        assert message.qos == 1
        assert payload["metadata"]["Content-Type"] == "application/json"
        assert payload["body"]["data"][0]["id"] == "urn:ngsi-ld:Vehicle:13"
    finally:
        await client.__aexit__(None, None, None)
