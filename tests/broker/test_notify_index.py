"""The notifier's in-memory subscription index: candidates, the outbox filter, staleness."""

from __future__ import annotations

from urbis.broker.container import Broker
from urbis.broker.notify_index import SubscriptionIndex
from urbis.context.actor import Actor
from urbis.context.jsonld import core_term_map
from urbis.context.model import Entity
from urbis.storage.base import TOPIC_SUBSCRIPTIONS, Applied

D = "https://uri.etsi.org/ngsi-ld/default-context/"


def sub(kind: str, **members: object) -> dict[str, object]:
    return {"type": "Subscription", "entities": [{"type": kind}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}, **members}


def change(kind: str) -> list[Applied]:
    return [Applied("urn:x:1", None, Entity("urn:x:1", [D + kind]))]


async def test_index_follows_subscription_writes(broker: Broker) -> None:
    index: SubscriptionIndex = broker.notifier.index
    actor, tm = Actor(tenant="city"), core_term_map()
    await index.refresh()
    assert index.fresh
    assert not index.keep("city", change("Car"))  # no subscription: nothing journaled
    await broker.subscriptions.create(actor, sub("Car", watchedAttributes=["speed"]), tm)
    assert not index.fresh and index.keep("city", change("Bus"))  # stale: keep everything
    await index.refresh()
    assert index.keep("city", change("Car")) and not index.keep("city", change("Bus"))
    assert not index.keep("other", change("Car"))
    [found] = index.candidates("city", [D + "Car"], [D + "speed"])
    assert index.candidates("city", [D + "Car"], [D + "color"]) == []
    assert index.get("city", found.id) is found
    await broker.subscriptions.create(actor, sub("Bus", isActive=False), tm)
    await broker.subscriptions.create(actor, sub("Tram", timeInterval=10), tm)
    await index.refresh()
    assert not index.keep("city", change("Bus"))  # paused
    assert index.candidates("city", [D + "Tram"], []) == []  # periodic
    index.invalidate(TOPIC_SUBSCRIPTIONS, "city")  # another worker wrote one
    assert not index.fresh
