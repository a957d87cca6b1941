"""The SubscriptionStore contract: every backend passes these unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from urbis.context.errors import AlreadyExists, BadRequestData, ResourceNotFound
from urbis.context.jsonld import TermMap
from urbis.context.subscription import Delivery, Subscription, to_record
from urbis.context.subscription_parse import parse_subscription
from urbis.settings import Settings
from urbis.storage.base import NotificationOutcome, SubscriptionStore
from urbis.storage.registry import Stores, open_stores

V = "https://example.org/vocab/"
NOW = "2026-01-01T00:00:00.000000Z"
LATER = "2030-01-01T00:00:00.000000Z"
TM = TermMap.compile([{t: V + t for t in ("Car", "Bus", "Bike", "Truck", "speed", "brand")}],
                     core="1.9")


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    """Every store of the backend, opened."""
    opened = await open_stores(settings.store, synchronous="normal")
    yield opened
    await opened.close()


@pytest.fixture
def subs(stores: Stores) -> SubscriptionStore:
    """The SubscriptionStore of the backend."""
    return stores.subscriptions


def make(n: int, **members: Any) -> Subscription:
    """A subscription on Car entities watching speed, with member overrides (None drops)."""
    body: dict[str, Any] = {
        "type": "Subscription", "entities": [{"type": "Car"}], "watchedAttributes": ["speed"],
        "notification": {"endpoint": {"uri": "http://localhost:9/notify"}},
    }
    body.update(members)
    body = {k: v for k, v in body.items() if v is not None}
    return parse_subscription(body, TM, NOW, f"urn:ngsi-ld:Subscription:{n}")


async def test_create_get_roundtrip(subs: SubscriptionStore) -> None:
    sub = make(1, q="speed>10;brand==\"seat\"", description="d", throttling=2.5,
               geoQ={"georel": "near;maxDistance==10", "geometry": "Point",
                     "coordinates": [1, 2]}, expiresAt="2099-01-01T00:00:00Z")
    await subs.create("t1", sub)
    got = await subs.get("t1", sub.id)
    assert got is not None
    assert to_record(got) == to_record(sub)
    assert got.delivery == Delivery()
    assert await subs.get("t1", "urn:ngsi-ld:Subscription:nope") is None


async def test_duplicate_id_and_tenant_isolation(subs: SubscriptionStore) -> None:
    await subs.create("t1", make(1))
    with pytest.raises(AlreadyExists):
        await subs.create("t1", make(1, description="other"))
    got = await subs.get("t1", make(1).id)
    assert got is not None and got.description is None
    await subs.create("t2", make(1, description="t2's"))
    got2 = await subs.get("t2", make(1).id)
    assert got2 is not None and got2.description == "t2's"
    assert await subs.get("t3", make(1).id) is None


async def test_creating_a_subscription_creates_its_tenant(stores: Stores) -> None:
    assert not await stores.subscriptions.tenant_exists("fresh")
    await stores.subscriptions.create("fresh", make(1))
    assert await stores.subscriptions.tenant_exists("fresh")
    assert await stores.entities.tenant_exists("fresh")


async def test_query_pages_in_creation_order(subs: SubscriptionStore) -> None:
    for n in (5, 3, 9, 1, 7):
        await subs.create("t1", make(n))
    await subs.create("t2", make(100))
    page = await subs.query("t1", limit=2, offset=0, count=True)
    assert [s.id[-1] for s in page.subscriptions] == ["5", "3"]
    assert page.count == 5
    page = await subs.query("t1", limit=2, offset=4)
    assert [s.id[-1] for s in page.subscriptions] == ["7"] and page.count is None
    page = await subs.query("t1", limit=0, count=True)
    assert page.subscriptions == [] and page.count == 5
    assert (await subs.query("none", limit=5, count=True)).count == 0


async def test_update_applies_the_function_atomically(subs: SubscriptionStore) -> None:
    await subs.create("t1", make(1))
    new = await subs.update("t1", make(1).id,
                            lambda s: replace(s, description="changed", modified_at=LATER))
    assert new.description == "changed"
    got = await subs.get("t1", make(1).id)
    assert got is not None and got.description == "changed" and got.modified_at == LATER
    assert got.created_at == NOW
    with pytest.raises(ResourceNotFound):
        await subs.update("t1", "urn:ngsi-ld:Subscription:nope", lambda s: s)
    with pytest.raises(ResourceNotFound):
        await subs.update("t2", make(1).id, lambda s: s)


async def test_a_refused_update_changes_nothing(subs: SubscriptionStore) -> None:
    await subs.create("t1", make(1))

    def refuse(sub: Subscription) -> Subscription:
        raise BadRequestData("no")

    with pytest.raises(BadRequestData):
        await subs.update("t1", make(1).id, refuse)
    got = await subs.get("t1", make(1).id)
    assert got is not None and to_record(got) == to_record(make(1))


async def test_concurrent_updates_do_not_lose_each_other(subs: SubscriptionStore) -> None:
    await subs.create("t1", make(1, description=""))

    async def add(n: int) -> None:
        await subs.update("t1", make(1).id,
                          lambda s: replace(s, description=(s.description or "") + f"{n},"))

    await asyncio.gather(*(add(n) for n in range(10)))
    got = await subs.get("t1", make(1).id)
    assert got is not None and got.description is not None
    assert sorted(got.description.split(",")[:-1], key=int) == [str(n) for n in range(10)]


async def test_delete(subs: SubscriptionStore) -> None:
    await subs.create("t1", make(1))
    assert not await subs.delete("t2", make(1).id)
    assert await subs.delete("t1", make(1).id)
    assert not await subs.delete("t1", make(1).id)
    assert await subs.get("t1", make(1).id) is None
    assert await subs.candidates("t1", [V + "Car"], [V + "speed"], NOW) == []
    await subs.create("t1", make(1))  # the id is free again


async def test_record_notification(subs: SubscriptionStore) -> None:
    await subs.create("t1", make(1))
    sid = make(1).id
    for ok, at in ((True, "2026-01-02T00:00:00Z"), (False, "2026-01-03T00:00:00Z")):
        assert await subs.record_notification("t1", sid, NotificationOutcome(ok, at))
    got = await subs.get("t1", sid)
    assert got is not None
    assert got.delivery == Delivery(times_sent=2, times_failed=1,
                                    last_notification="2026-01-03T00:00:00Z",
                                    last_success="2026-01-02T00:00:00Z",
                                    last_failure="2026-01-03T00:00:00Z", last_status="failed")
    assert got.status(NOW) == "failed"
    await subs.record_notification("t1", sid, NotificationOutcome(True, "2026-01-04T00:00:00Z"))
    await subs.update("t1", sid, lambda s: replace(s, description="x"))
    got = await subs.get("t1", sid)
    assert got is not None and got.delivery.times_sent == 3 and got.delivery.last_status == "ok"
    assert got.delivery.last_failure == "2026-01-03T00:00:00Z"
    assert not await subs.record_notification("t1", "urn:x:gone", NotificationOutcome(True, NOW))


async def test_active_spans_tenants_and_skips_paused_and_expired(subs: SubscriptionStore) -> None:
    await subs.create("t1", make(1))
    await subs.create("t2", make(2))
    await subs.create("t1", make(3, isActive=False))
    await subs.create("t1", make(4, expiresAt="2027-01-01T00:00:00Z"))
    found = {(t, s.id[-1]) for t, s in await subs.active(NOW)}
    assert found == {("t1", "1"), ("t2", "2"), ("t1", "4")}
    found = {(t, s.id[-1]) for t, s in await subs.active("2028-01-01T00:00:00Z")}
    assert found == {("t1", "1"), ("t2", "2")}
    await subs.update("t1", make(3).id, lambda s: replace(s, is_active=True))
    assert len(await subs.active(NOW)) == 4


async def test_candidates_are_index_lookups(subs: SubscriptionStore) -> None:
    await subs.create("t1", make(1))  # Car, speed
    await subs.create("t1", make(2, watchedAttributes=None))  # Car, any attribute
    await subs.create("t1", make(3, entities=None))  # any type, speed
    await subs.create("t1", make(4, entities=[{"type": "(Car;Bus)|Bike"}],
                                 watchedAttributes=["brand", "speed"]))
    await subs.create("t1", make(5, watchedAttributes=None, timeInterval=60))  # periodic
    await subs.create("t1", make(6, isActive=False))
    await subs.create("t2", make(7))

    async def ids(types: list[str], attrs: list[str]) -> list[str]:
        found = await subs.candidates("t1", [V + t for t in types], [V + a for a in attrs], NOW)
        return [s.id[-1] for s in found]

    assert await ids(["Car"], ["speed"]) == ["1", "2", "3", "4"]
    assert await ids(["Car"], ["brand"]) == ["2", "4"]
    assert await ids(["Bus"], ["speed"]) == ["3", "4"]
    assert await ids(["Truck"], ["speed"]) == ["3"]
    assert await ids(["Truck"], ["brand"]) == []
    assert await ids(["Car"], []) == ["2"]
    await subs.update("t1", make(1).id, lambda s: replace(s, watched=[V + "brand"]))
    assert await ids(["Car"], ["brand"]) == ["1", "2", "4"]
    assert await subs.candidates("t1", [V + "Car"], [V + "speed"], "2100-01-01T00:00:00Z")


async def test_text_is_stored_intact_or_refused(subs: SubscriptionStore) -> None:
    sub = make(1, description="a\x00b ü 😀")
    try:
        await subs.create("t1", sub)
    except BadRequestData:
        assert await subs.get("t1", sub.id) is None
        return
    got = await subs.get("t1", sub.id)
    assert got is not None and got.description == "a\x00b ü 😀"
