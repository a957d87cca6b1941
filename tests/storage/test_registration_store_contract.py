"""The RegistrationStore contract: every backend passes these unchanged."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from urbis.context.errors import AlreadyExists, BadRequestData, Conflict, ResourceNotFound
from urbis.context.jsonld import TermMap
from urbis.context.registration import Registration, to_record
from urbis.context.registration_match import serves
from urbis.context.registration_parse import parse_registration, patch_registration
from urbis.context.subscription_parse import parse_subscription
from urbis.settings import Settings
from urbis.storage.registrations_base import RegistrationQuery, RegistrationStore, SourceTally
from urbis.storage.registry import Stores, open_stores

V = "https://example.org/vocab/"
NOW = "2026-01-01T00:00:00.000000Z"
LATER = "2030-01-01T00:00:00.000000Z"
TYPES = ("Car", "Bus", "Bike", "Truck")
ATTRS = ("speed", "brand", "owner", "fuel")
TM = TermMap.compile([{t: V + t for t in TYPES + ATTRS}], core="1.9")
CAR, BUS, BIKE = V + "Car", V + "Bus", V + "Bike"
SPEED, BRAND, OWNER = V + "speed", V + "brand", V + "owner"


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    """Every store of the backend, opened."""
    opened = await open_stores(settings.store, synchronous="normal")
    yield opened
    await opened.close()


@pytest.fixture
def regs(stores: Stores) -> RegistrationStore:
    """The RegistrationStore of the backend."""
    assert stores.registrations is not None
    return stores.registrations


def make(n: int, **members: Any) -> Registration:
    """A registration of Car speed, with member overrides (None drops)."""
    body: dict[str, Any] = {
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "Car"}], "propertyNames": ["speed"]}],
        "endpoint": f"http://source-{n}.example.org"}
    body.update(members)
    body = {k: v for k, v in body.items() if v is not None}
    return parse_registration(body, TM, NOW, f"urn:ngsi-ld:ContextSourceRegistration:{n}")


def exclusive(n: int, entity: str = "urn:ngsi-ld:Car:1", attr: str = "speed") -> Registration:
    """An exclusive registration of one attribute of one entity."""
    return make(n, mode="exclusive", information=[
        {"entities": [{"type": "Car", "id": entity}], "propertyNames": [attr]}])


def ids(found: list[Registration]) -> list[int]:
    """The numbers of the registrations."""
    return [int(r.id.rsplit(":", 1)[1]) for r in found]


async def test_create_get_roundtrip(regs: RegistrationStore) -> None:
    reg = make(1, registrationName="r", location={"type": "Point", "coordinates": [1, 2]},
               operations=["retrieveOps"], expiresAt="2099-01-01T00:00:00Z", provider="x",
               management={"timeout": 100}, scope="/a/b")
    await regs.create("t1", reg, NOW)
    got = await regs.get("t1", reg.id)
    assert got is not None and to_record(got) == to_record(reg)
    assert got.source_status.times_sent == 0 and got.source_status.status is None
    assert await regs.get("t1", "urn:ngsi-ld:ContextSourceRegistration:nope") is None


async def test_duplicate_id_and_tenant_isolation(stores: Stores, regs: RegistrationStore
                                                 ) -> None:
    assert not await regs.tenant_exists("t1")
    await regs.create("t1", make(1), NOW)
    assert await regs.tenant_exists("t1") and await stores.entities.tenant_exists("t1")
    with pytest.raises(AlreadyExists):
        await regs.create("t1", make(1, description="other"), NOW)
    await regs.create("t2", make(1, description="t2's"), NOW)
    one, two = await regs.get("t1", make(1).id), await regs.get("t2", make(1).id)
    assert one is not None and one.description is None
    assert two is not None and two.description == "t2's"
    assert await regs.get("t3", make(1).id) is None
    assert await regs.count("t1", NOW) == 1 and await regs.count("t3", NOW) == 0


async def test_update_and_delete(regs: RegistrationStore) -> None:
    await regs.create("t", make(1), NOW)
    new = await regs.update("t", make(1).id, lambda r: patch_registration(
        r, {"description": "d", "information": [{"entities": [{"type": "Bus"}]}]}, TM, LATER),
        NOW)
    assert new.description == "d" and new.modified_at == LATER
    got = await regs.get("t", make(1).id)
    assert got is not None and to_record(got) == to_record(new)
    assert ids(await regs.matching("t", None, [BUS], None, "queryEntity", NOW)) == [1]
    assert await regs.matching("t", None, [CAR], None, "queryEntity", NOW) == []
    with pytest.raises(ResourceNotFound):
        await regs.update("t", "urn:ngsi-ld:ContextSourceRegistration:9", lambda r: r, NOW)
    with pytest.raises(BadRequestData):  # a refused change changes nothing
        await regs.update("t", make(1).id, lambda r: patch_registration(
            r, {"endpoint": None}, TM, LATER), NOW)
    assert await regs.delete("t", make(1).id)
    assert not await regs.delete("t", make(1).id)
    assert await regs.get("t", make(1).id) is None
    assert await regs.matching("t", None, [BUS], None, "queryEntity", NOW) == []


async def test_query_narrows_tests_and_pages(regs: RegistrationStore) -> None:
    for n, (kind, attr) in enumerate([("Car", "speed"), ("Bus", "speed"), ("Car", "brand"),
                                      ("Bike", "owner"), ("Car", "speed")], 1):
        await regs.create("t", make(n, information=[
            {"entities": [{"type": kind}], "propertyNames": [attr]}]), NOW)
    page = await regs.query("t", RegistrationQuery(limit=2, offset=1, count=True))
    assert ids(page.registrations) == [2, 3] and page.count == 5
    page = await regs.query("t", RegistrationQuery(types=[CAR], count=True))
    assert ids(page.registrations) == [1, 3, 5] and page.count == 3
    page = await regs.query("t", RegistrationQuery(types=[CAR], attrs=[SPEED], limit=1,
                                                   count=True))
    assert ids(page.registrations) == [1] and page.count == 2
    page = await regs.query("t", RegistrationQuery(
        test=lambda r: r.endpoint.startswith("http://source-5"), count=True))
    assert ids(page.registrations) == [5] and page.count == 1
    page = await regs.query("t", RegistrationQuery(limit=0, count=True))
    assert page.registrations == [] and page.count == 5
    assert (await regs.query("other", RegistrationQuery(count=True))).count == 0


async def test_matching_by_type_id_pattern_attrs_and_operation(regs: RegistrationStore
                                                               ) -> None:
    await regs.create("t", make(1), NOW)  # Car speed
    await regs.create("t", make(2, information=[
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:7"}]}]), NOW)
    await regs.create("t", make(3, information=[
        {"entities": [{"type": ["Bus", "Car"], "idPattern": "Car:[0-4]$"}],
         "relationshipNames": ["owner"]}]), NOW)
    await regs.create("t", make(4, information=[{"propertyNames": ["brand"]}],
                             operations=["createEntity"]), NOW)
    await regs.create("t", make(5, expiresAt="2026-06-01T00:00:00Z"), NOW)
    later = "2026-07-01T00:00:00Z"

    async def match(entity_id: str | None, types: list[str] | None, attrs: list[str] | None,
                    op: str = "retrieveEntity", now: str = NOW) -> list[int]:
        return ids(await regs.matching("t", entity_id, types, attrs, op, now))

    assert await match("urn:ngsi-ld:Car:7", [CAR], None) == [1, 2, 5]
    assert await match("urn:ngsi-ld:Car:3", [CAR], None) == [1, 3, 5]
    assert await match("urn:ngsi-ld:Car:3", None, [OWNER]) == [3]
    assert await match("urn:ngsi-ld:Car:7", None, None, now=later) == [1, 2]
    assert await match(None, [BUS], None) == [3]
    assert await match(None, None, [BRAND]) == [2]
    assert await match(None, [BIKE], [BRAND], op="createEntity") == [4]
    assert await match(None, None, None, op="createEntity") == [4]
    assert await match(None, None, None, op="updateEntity") == []
    with pytest.raises(BadRequestData):
        await regs.matching("t", None, None, None, "flyEntity", NOW)


async def test_matching_agrees_with_the_pure_rules(regs: RegistrationStore) -> None:
    rng = random.Random(7)
    created = []
    for n in range(1, 41):
        info: dict[str, Any] = {}
        if rng.random() < 0.8:
            entity: dict[str, Any] = {"type": rng.sample(TYPES, rng.randint(1, 2))}
            pick = rng.random()
            if pick < 0.3:
                entity["id"] = f"urn:ngsi-ld:X:{rng.randint(1, 5)}"
            elif pick < 0.5:
                entity["idPattern"] = f"X:[{rng.randint(1, 3)}-5]$"
            info["entities"] = [entity]
        if rng.random() < 0.6 or "entities" not in info:
            info["propertyNames"] = rng.sample(ATTRS, rng.randint(1, 2))
        reg = make(n, information=[info], operations=[
            rng.choice(["retrieveOps", "federationOps", "updateOps", "createEntity"])])
        created.append(reg)
        await regs.create("t", reg, NOW)
    for _ in range(60):
        entity_id = rng.choice([None, f"urn:ngsi-ld:X:{rng.randint(1, 6)}"])
        types = rng.choice([None, [V + rng.choice(TYPES)], [V + t for t in TYPES[:2]]])
        attrs = rng.choice([None, [V + rng.choice(ATTRS)]])
        op = rng.choice(["retrieveEntity", "queryEntity", "updateEntity", "createEntity"])
        expected = [r.id for r in created if serves(r, entity_id, types, attrs, op, NOW)]
        found = await regs.matching("t", entity_id, types, attrs, op, NOW)
        assert [r.id for r in found] == expected, (entity_id, types, attrs, op)


async def test_exclusive_conflicts_are_refused(regs: RegistrationStore) -> None:
    await regs.create("t", exclusive(1), NOW)
    with pytest.raises(Conflict):
        await regs.create("t", exclusive(2), NOW)
    with pytest.raises(Conflict):
        await regs.create("t", make(3, mode="redirect"), NOW)  # every Car
    await regs.create("t", exclusive(4, attr="brand"), NOW)
    await regs.create("t", exclusive(5, entity="urn:ngsi-ld:Car:2"), NOW)
    await regs.create("t", make(6, mode="redirect", information=[
        {"entities": [{"type": "Bus"}]}]), NOW)
    await regs.create("t", make(7, mode="redirect", information=[
        {"entities": [{"type": "Bus"}]}]), NOW)  # redirects may overlap
    await regs.create("t", make(8), NOW)  # inclusive: never a conflict
    await regs.create("other", exclusive(2), NOW)  # another tenant
    with pytest.raises(Conflict):  # an update into a conflict changes nothing
        await regs.update("t", exclusive(4).id, lambda r: patch_registration(
            r, {"information": [{"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:1"}],
                                 "propertyNames": ["speed"]}]}, TM, LATER), NOW)
    got = await regs.get("t", exclusive(4).id)
    assert got is not None and got.information[0].property_names == [BRAND]
    await regs.update("t", exclusive(1).id, lambda r: patch_registration(
        r, {"description": "still exclusive"}, TM, LATER), NOW)  # not a conflict with itself
    await regs.delete("t", exclusive(1).id)
    await regs.create("t", exclusive(2), NOW)
    gone = make(9, mode="exclusive", expiresAt="2026-06-01T00:00:00Z", information=[
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:9"}], "propertyNames": ["speed"]}])
    await regs.create("t", gone, NOW)
    await regs.create("t", make(10, mode="exclusive", information=[
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:9"}], "propertyNames": ["speed"]}]),
        "2026-07-01T00:00:00Z")  # the other one has expired


async def test_concurrent_exclusive_creations_conflict(regs: RegistrationStore) -> None:
    results = await asyncio.gather(*(regs.create("t", exclusive(n), NOW) for n in range(1, 6)),
                                   return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)


async def test_changes_are_recorded_claimed_and_finished(regs: RegistrationStore) -> None:
    await regs.create("t", make(1), NOW)
    await regs.update("t", make(1).id, lambda r: patch_registration(
        r, {"description": "d"}, TM, LATER), NOW)
    await regs.delete("t", make(1).id)
    claimed = await regs.claim_changes(10, lease=60)
    assert [(c.before is None, c.after is None) for c in claimed] == [
        (True, False), (False, False), (False, True)]
    assert claimed[1].before is not None and claimed[1].before.description is None
    assert claimed[1].after is not None and claimed[1].after.description == "d"
    assert all(c.tenant == "t" and c.created > 0 for c in claimed)
    assert await regs.claim_changes(10, lease=60) == []  # leased
    await regs.finish_changes([claimed[0].seq])
    assert await regs.claim_changes(10, lease=0) == []  # the others are still leased
    await regs.finish_changes([c.seq for c in claimed[1:]])
    assert await regs.claim_changes(10, lease=0) == []


async def test_expired_leases_are_claimed_again(regs: RegistrationStore) -> None:
    await regs.create("t", make(1), NOW)
    first = await regs.claim_changes(10, lease=0.05)
    assert len(first) == 1
    await asyncio.sleep(0.1)
    second = await regs.claim_changes(10, lease=60)
    assert [c.seq for c in second] == [first[0].seq]


async def test_outcomes_count_and_live(regs: RegistrationStore) -> None:
    await regs.create("t", make(1), NOW)
    await regs.create("t", make(2, expiresAt="2026-06-01T00:00:00Z"), NOW)
    await regs.record_outcomes([
        SourceTally("t", make(1).id, sent=3, failed=1, last_success=NOW, status="ok"),
        SourceTally("t", "urn:gone:1", sent=1)])
    await regs.record_outcomes([SourceTally("t", make(1).id, sent=1, failed=1,
                                            last_failure=LATER, status="failed")])
    got = await regs.get("t", make(1).id)
    assert got is not None
    status = got.source_status
    assert (status.times_sent, status.times_failed, status.last_success, status.last_failure,
            status.status) == (4, 2, NOW, LATER, "failed")
    later = "2026-07-01T00:00:00Z"
    assert await regs.count("t", NOW) == 2 and await regs.count("t", later) == 1
    assert ids(await regs.live("t", later, 10)) == [1]
    assert ids(await regs.live("t", NOW, 1)) == [1]


async def test_csource_subscriptions_are_kept_apart(stores: Stores) -> None:
    assert stores.csource_subscriptions is not None
    body = {"type": "Subscription", "entities": [{"type": "Car"}],
            "notification": {"endpoint": {"uri": "http://localhost:9/n"}}}
    sub = parse_subscription(body, TM, NOW, "urn:ngsi-ld:Subscription:1")
    await stores.csource_subscriptions.create("t", sub)
    assert await stores.csource_subscriptions.get("t", sub.id) is not None
    assert await stores.subscriptions.get("t", sub.id) is None
    assert await stores.subscriptions.active(NOW) == []
    assert [s.id for _, s in await stores.csource_subscriptions.active(NOW)] == [sub.id]
    await stores.subscriptions.create("t", sub)  # the same id in the other store
    assert (await stores.csource_subscriptions.query("t", limit=10, count=True)).count == 1
    assert await stores.csource_subscriptions.delete("t", sub.id)
    assert await stores.subscriptions.get("t", sub.id) is not None
