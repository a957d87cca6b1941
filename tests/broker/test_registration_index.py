"""The per-tenant cache of registrations: same answers as the store, follows every write."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from urbis.broker.registration_index import RegistrationIndex
from urbis.context.jsonld import TermMap
from urbis.context.registration import Registration
from urbis.context.registration_parse import parse_registration
from urbis.settings import Settings
from urbis.storage.base import TOPIC_ALL
from urbis.storage.registrations_base import TOPIC_REGISTRATIONS, RegistrationStore
from urbis.storage.registry import Stores, open_stores

V = "https://example.org/vocab/"
NOW = "2026-01-01T00:00:00.000000Z"
TYPES = ("Car", "Bus", "Bike")
ATTRS = ("speed", "brand", "owner")
TM = TermMap.compile([{t: V + t for t in TYPES + ATTRS}], core="1.9")


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    """Every store of the backend, opened."""
    opened = await open_stores(settings.store, synchronous="normal")
    yield opened
    await opened.close()


def make(n: int, info: dict[str, Any], **members: Any) -> Registration:
    """A registration with one information item."""
    body = {"type": "ContextSourceRegistration", "information": [info],
            "endpoint": f"http://s{n}.example.org", **members}
    return parse_registration(body, TM, NOW, f"urn:ngsi-ld:ContextSourceRegistration:{n}")


def random_registration(n: int, rng: random.Random) -> Registration:
    """A registration of random types, ids, patterns and attributes."""
    info: dict[str, Any] = {}
    if rng.random() < 0.8:
        entity: dict[str, Any] = {"type": rng.sample(TYPES, rng.randint(1, 2))}
        if rng.random() < 0.4:
            entity["id"] = f"urn:x:{rng.randint(1, 4)}"
        elif rng.random() < 0.3:
            entity["idPattern"] = f"x:[{rng.randint(1, 3)}-4]$"
        info["entities"] = [entity]
    if rng.random() < 0.5 or "entities" not in info:
        info["propertyNames"] = rng.sample(ATTRS, rng.randint(1, 2))
    return make(n, info, operations=[rng.choice(["retrieveOps", "federationOps", "updateOps"])])


async def agree(index: RegistrationIndex, store: RegistrationStore, rng: random.Random,
                rounds: int = 80) -> None:
    """The index answers as the store does."""
    for _ in range(rounds):
        args = (rng.choice([None, f"urn:x:{rng.randint(1, 5)}"]),
                rng.choice([None, [V + rng.choice(TYPES)], [V + TYPES[0], V + TYPES[1]]]),
                rng.choice([None, [V + rng.choice(ATTRS)]]),
                rng.choice(["retrieveEntity", "queryEntity", "updateAttrs"]))
        cached = await index.matching("t", *args, NOW)
        direct = await store.matching("t", *args, NOW)
        assert [r.id for r in cached] == [r.id for r in direct], args


@pytest.mark.parametrize("limit", [1000, 3])
async def test_index_answers_as_the_store(stores: Stores, limit: int) -> None:
    store = stores.registrations
    assert store is not None
    rng = random.Random(limit)
    index = RegistrationIndex(store, memory_limit=limit)
    assert await index.matching("t", None, None, None, "queryEntity", NOW) == []
    for n in range(1, 31):
        with index.writing("t"):
            await store.create("t", random_registration(n, rng), NOW)
    await agree(index, store, rng)


async def test_writes_and_announcements_invalidate(stores: Stores) -> None:
    store = stores.registrations
    assert store is not None
    here, there = RegistrationIndex(store), RegistrationIndex(store)
    car = make(1, {"entities": [{"type": "Car"}]})
    assert await there.matching("t", None, [V + "Car"], None, "queryEntity", NOW) == []
    with here.writing("t"):
        await store.create("t", car, NOW)
    assert len(await here.matching("t", None, [V + "Car"], None, "queryEntity", NOW)) == 1
    # another worker's cache is stale until the announcement reaches it
    assert await there.matching("t", None, [V + "Car"], None, "queryEntity", NOW) == []
    there.invalidate(TOPIC_REGISTRATIONS, "other")
    assert await there.matching("t", None, [V + "Car"], None, "queryEntity", NOW) == []
    there.invalidate(TOPIC_REGISTRATIONS, "t")
    assert len(await there.matching("t", None, [V + "Car"], None, "queryEntity", NOW)) == 1
    await store.delete("t", car.id)
    there.invalidate(TOPIC_ALL, None)
    assert await there.matching("t", None, [V + "Car"], None, "queryEntity", NOW) == []


async def test_announcements_reach_other_workers(settings: Settings) -> None:
    if not settings.store.startswith("postgres"):
        pytest.skip("one process owns a SQLite store: it needs no announcements")
    worker_a = await open_stores(settings.store)
    worker_b = await open_stores(settings.store)
    try:
        assert worker_a.registrations is not None and worker_b.registrations is not None
        assert worker_b.invalidations is not None
        index_b = RegistrationIndex(worker_b.registrations)
        worker_b.invalidations.subscribe(index_b.invalidate)
        car = make(1, {"entities": [{"type": "Car"}]})
        assert await index_b.matching("t", None, None, None, "queryEntity", NOW) == []
        await worker_a.registrations.create("t", car, NOW)
        async with asyncio.timeout(10):
            while not await index_b.matching("t", None, None, None, "queryEntity", NOW):
                await asyncio.sleep(0.02)
        await worker_a.registrations.delete("t", car.id)
        async with asyncio.timeout(10):
            while await index_b.matching("t", None, None, None, "queryEntity", NOW):
                await asyncio.sleep(0.02)
    finally:
        await worker_a.close()
        await worker_b.close()
