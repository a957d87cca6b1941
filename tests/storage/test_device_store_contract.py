"""The DeviceStore contract (IoT agents' registry and dead-letter log), on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from urbis.context.devices import DeadLetter, Device, ServiceGroup
from urbis.context.errors import AlreadyExists
from urbis.settings import Settings
from urbis.storage.base import InvalidationChannel
from urbis.storage.devices_base import TOPIC_DEVICES, DeadLetterQuery, DeviceStore, Scope
from urbis.storage.registry import Stores, open_stores

NOW = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    opened = await open_stores(settings.store, synchronous="normal")
    yield opened
    await opened.close()


@pytest.fixture
def devices(stores: Stores) -> DeviceStore:
    assert stores.devices is not None and isinstance(stores.devices, DeviceStore)
    return stores.devices


def group(apikey: str, resource: str = "/iot/d", tenant: str = "city", path: str = "/",
          entity_type: str = "Thermometer") -> ServiceGroup:
    body = {"apikey": apikey, "resource": resource, "entity_type": entity_type,
            "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}]}
    return ServiceGroup(tenant, path, apikey, resource, entity_type, body, NOW)


def device(device_id: str, apikey: str = "k1", tenant: str = "city", path: str = "/"
           ) -> Device:
    name = f"urn:ngsi-ld:Thermometer:{device_id}"
    body = {"device_id": device_id, "apikey": apikey, "entity_name": name,
            "entity_type": "Thermometer", "protocol": "PDI-IoTA-UltraLight"}
    return Device(tenant, path, device_id, apikey, name, "Thermometer", body, NOW)


async def test_groups_add_list_find_replace_delete(devices: DeviceStore) -> None:
    await devices.add_groups([group("k1"), group("k1", "/iot/json"), group("k2", path="/a")])
    page, count = await devices.groups(Scope("city", None, limit=2))
    assert count == 3 and [(g.apikey, g.resource) for g in page] == [("k1", "/iot/d"),
                                                                     ("k1", "/iot/json")]
    page, count = await devices.groups(Scope("city", "/a"))
    assert count == 1 and page[0] == group("k2", path="/a")
    page, count = await devices.groups(Scope("city", None), apikey="k1", resource="/iot/json")
    assert count == 1 and page[0].resource == "/iot/json"
    assert (await devices.groups(Scope("elsewhere")))[1] == 0
    assert [g.resource for g in await devices.groups_by_apikey("k1")] == ["/iot/d", "/iot/json"]
    changed = ServiceGroup("city", "/", "k1", "/iot/d", "Sensor",
                           {"apikey": "k1", "entity_type": "Sensor", "cbroker": "x"}, NOW)
    assert await devices.replace_group(changed)
    assert (await devices.groups_by_apikey("k1"))[0] == changed
    assert not await devices.replace_group(group("nope"))
    assert not await devices.delete_group("elsewhere", "k1", "/iot/d")  # another tenant's
    assert await devices.delete_group("city", "k1", "/iot/d")
    assert not await devices.delete_group("city", "k1", "/iot/d")
    assert [g.resource for g in await devices.groups_by_apikey("k1")] == ["/iot/json"]


async def test_groups_are_added_all_or_none(devices: DeviceStore) -> None:
    await devices.add_groups([group("k1")])
    with pytest.raises(AlreadyExists) as caught:
        await devices.add_groups([group("k9"), group("k1")])
    assert caught.value.extra["fiware"] == "DUPLICATE_GROUP"
    assert await devices.groups_by_apikey("k9") == []


async def test_devices_add_get_find_list_replace_delete(devices: DeviceStore) -> None:
    await devices.add_devices([device("d2"), device("d1"), device("d3", path="/b")])
    assert await devices.get_device("city", "d1") == device("d1")
    assert await devices.get_device("elsewhere", "d1") is None
    assert await devices.find_device("k1", "d1") == device("d1")
    assert await devices.find_device("k2", "d1") is None
    page, count = await devices.devices(Scope("city", None, limit=2, offset=1))
    assert count == 3 and [d.device_id for d in page] == ["d2", "d3"]
    page, count = await devices.devices(Scope("city", "/"))
    assert count == 2 and [d.device_id for d in page] == ["d1", "d2"]
    moved = Device("city", "/b", "d1", "k2", "urn:ngsi-ld:X:1", "X", {"device_id": "d1"}, NOW)
    assert await devices.replace_device(moved)
    assert await devices.find_device("k1", "d1") is None
    assert await devices.find_device("k2", "d1") == moved
    assert not await devices.replace_device(device("nope"))
    assert await devices.delete_device("city", "d1")
    assert not await devices.delete_device("city", "d1")
    assert await devices.get_device("city", "d1") is None


async def test_device_keys_are_unique(devices: DeviceStore) -> None:
    await devices.add_devices([device("d1"), device("d2")])
    for duplicate in (device("d1", apikey="other"), device("d1", tenant="elsewhere")):
        with pytest.raises(AlreadyExists) as caught:
            await devices.add_devices([device("d5"), duplicate])
        assert caught.value.extra["fiware"] == "DUPLICATE_DEVICE_ID"
    assert await devices.get_device("city", "d5") is None  # all or none
    await devices.add_devices([device("d1", apikey="", tenant="elsewhere"),
                               device("d1", apikey="", tenant="third")])  # no apikey: no clash
    assert await devices.find_device("", "d1") is None
    with pytest.raises(AlreadyExists):  # the apikey + device id of city's d1 is taken
        await devices.replace_device(device("d1", apikey="k1", tenant="elsewhere"))


async def test_last_seen_only_moves_forward(devices: DeviceStore) -> None:
    await devices.add_devices([device("d1"), device("d2")])
    await devices.touch([("city", "d1", "2026-01-02T00:00:00Z"),
                         ("city", "d2", "2026-01-03T00:00:00Z"),
                         ("city", "ghost", "2026-01-03T00:00:00Z")])
    await devices.touch([("city", "d1", "2026-01-01T12:00:00Z")])
    await devices.touch([])
    d1, d2 = await devices.get_device("city", "d1"), await devices.get_device("city", "d2")
    assert d1 is not None and d1.last_seen == "2026-01-02T00:00:00Z"
    assert d2 is not None and d2.last_seen == "2026-01-03T00:00:00Z"
    await devices.replace_device(device("d1"))  # a provisioning change keeps last_seen
    d1 = await devices.get_device("city", "d1")
    assert d1 is not None and d1.last_seen == "2026-01-02T00:00:00Z"


def letter(n: int, tenant: str | None = "city", device_id: str = "d1",
           reason: str = "syntax") -> DeadLetter:
    return DeadLetter(f"2026-01-01T00:00:{n:02d}Z", tenant, "k1", device_id, "http", reason,
                      f"detail {n}", "t|x\x00y" if n == 0 else f"payload {n}")


async def test_dead_letters_are_bounded_newest_first(devices: DeviceStore) -> None:
    await devices.add_dead_letters([letter(n) for n in range(5)], keep=3)
    await devices.add_dead_letters([], keep=3)
    await devices.add_dead_letters([letter(5, None, "ghost", "unknown_apikey"),
                                    letter(6, "other", "d9")], keep=4)
    everything = await devices.dead_letters(DeadLetterQuery())
    assert [x.detail for x in everything] == ["detail 6", "detail 5", "detail 4", "detail 3"]
    assert everything[0].seq > everything[1].seq > 0
    city = await devices.dead_letters(DeadLetterQuery(["city"]))
    assert [x.detail for x in city] == ["detail 4", "detail 3"]
    with_unknown = await devices.dead_letters(DeadLetterQuery(["city", None], limit=2))
    assert [x.detail for x in with_unknown] == ["detail 5", "detail 4"]
    only_unknown = await devices.dead_letters(DeadLetterQuery([None]))
    assert [x.reason for x in only_unknown] == ["unknown_apikey"]
    assert only_unknown[0].tenant is None
    by_device = await devices.dead_letters(DeadLetterQuery(None, device_id="d9"))
    assert [x.tenant for x in by_device] == ["other"]
    by_reason = await devices.dead_letters(DeadLetterQuery(None, reason="syntax"))
    assert len(by_reason) == 3  # letter 6 is a syntax error too
    assert await devices.dead_letters(DeadLetterQuery([])) == []


async def test_nul_characters_are_stored_or_match_nothing(devices: DeviceStore) -> None:
    await devices.add_dead_letters([letter(0)], keep=10)
    [stored] = await devices.dead_letters(DeadLetterQuery())
    assert stored.payload.startswith("t|x") and stored.payload.endswith("y")
    assert await devices.find_device("k\x00", "d1") is None
    assert await devices.get_device("city", "d\x00") is None
    assert await devices.groups_by_apikey("k\x00") == []
    assert not await devices.delete_device("city", "d\x00")


async def test_changes_are_announced_to_other_processes(stores: Stores,
                                                        devices: DeviceStore) -> None:
    channel = stores.invalidations
    if channel is None:
        pytest.skip("a single-process store announces nothing")
    assert isinstance(channel, InvalidationChannel)
    heard: list[tuple[str, str | None]] = []
    channel.subscribe(lambda topic, key: heard.append((topic, key)))
    await devices.add_groups([group("kA")])
    await devices.add_devices([device("d1", apikey="kB")])
    await devices.replace_device(device("d1", apikey="kC"))
    await devices.delete_group("city", "kA", "/iot/d")
    for _ in range(50):
        if {("devices", k) for k in ("kA", "kB", "kC")} <= set(heard):
            break
        await asyncio.sleep(0.05)
    assert {(TOPIC_DEVICES, k) for k in ("kA", "kB", "kC")} <= set(heard)
