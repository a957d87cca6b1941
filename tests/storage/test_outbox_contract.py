"""OutboxStore contract, on every backend: journaled changes, leases, retries, periodic runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from test_entity_store_contract import creator, ent

from urbis.context.jsonld import core_term_map
from urbis.context.subscription_parse import parse_subscription
from urbis.settings import Settings
from urbis.storage.base import Applied, DeliveryTally, PendingNotification
from urbis.storage.registry import Stores, open_stores

NOW = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    """Opened stores of the backend."""
    opened = await open_stores(settings.store, synchronous="normal")
    yield opened
    await opened.close()


async def test_changes_are_journaled_claimed_once_and_finished(stores: Stores) -> None:
    await stores.entities.mutate("t1", [creator(ent(1)), creator(ent(2))])
    await stores.entities.mutate("t1", [creator(ent(3))])
    claimed = await stores.outbox.claim_changes(10, lease=60)
    assert [len(c.changes) for c in claimed] == [2, 1]
    assert all(c.tenant == "t1" for c in claimed)
    first = claimed[0].changes[0]
    assert isinstance(first, Applied) and first.before is None and first.after is not None
    assert await stores.outbox.claim_changes(10, lease=60) == []  # leased
    retry = PendingNotification("t1", "urn:s:1", {"id": "urn:n:1"}, 1, time.time() - 1, "x")
    seqs = await stores.outbox.finish_changes([c.seq for c in claimed], [retry])
    assert len(seqs) == 1
    assert await stores.outbox.backlog() == (0, 1)
    [again] = await stores.outbox.claim_retries(10, lease=60)
    assert (again.seq, again.body, again.attempts, again.error) == (seqs[0], {"id": "urn:n:1"},
                                                                    1, "x")
    assert await stores.outbox.claim_retries(10, lease=60) == []  # leased
    again.attempts, again.next_at = 2, time.time() - 1
    await stores.outbox.finish_retries([], [again])
    [third] = await stores.outbox.claim_retries(10, lease=60)
    assert third.attempts == 2
    await stores.outbox.finish_retries([third.seq], [])
    assert await stores.outbox.backlog() == (0, 0)


async def test_an_ended_lease_frees_the_row(stores: Stores) -> None:
    await stores.entities.mutate("t1", [creator(ent(1))])
    [claimed] = await stores.outbox.claim_changes(10, lease=0.2)
    time.sleep(0.3)
    [again] = await stores.outbox.claim_changes(10, lease=60)
    assert again.seq == claimed.seq


async def test_the_filter_and_purges(stores: Stores) -> None:
    stores.outbox.set_filter(lambda tenant, applied: tenant == "kept")
    await stores.entities.mutate("skipped", [creator(ent(1))])
    await stores.entities.mutate("kept", [creator(ent(1)), creator(ent(2))])
    assert await stores.outbox.backlog() == (1, 0)
    assert await stores.entities.delete_by_type("kept", ent(1).types[0]) == 2
    claimed = await stores.outbox.claim_changes(10, lease=60)
    purge = claimed[-1].changes
    assert sorted(a.entity_id for a in purge) == [ent(1).id, ent(2).id]
    assert all(a.after is None and a.before is not None for a in purge)


async def test_periodic_claims_and_tallies(stores: Stores) -> None:
    tm = core_term_map()
    sub = parse_subscription({"type": "Subscription", "entities": [{"type": "Car"}],
                              "timeInterval": 60, "notification": {"endpoint": {
                                  "uri": "http://127.0.0.1:9/n"}}}, tm, NOW, "urn:s:p")
    await stores.subscriptions.create("t1", sub)
    now = time.time()
    [(tenant, due)] = await stores.outbox.claim_periodic(now, 10)
    assert (tenant, due.id) == ("t1", "urn:s:p")
    assert await stores.outbox.claim_periodic(now + 30, 10) == []  # next run: one interval on
    assert len(await stores.outbox.claim_periodic(now + 61, 10)) == 1
    await stores.subscriptions.record_notifications([
        DeliveryTally("t1", "urn:s:p", 3, 1, NOW, NOW, NOW, "failed"),
        DeliveryTally("t1", "urn:s:gone", 1)])
    got = await stores.subscriptions.get("t1", "urn:s:p")
    assert got is not None
    assert (got.delivery.times_sent, got.delivery.times_failed, got.delivery.last_status) == (
        3, 1, "failed")
    assert got.status(NOW) == "failed"
