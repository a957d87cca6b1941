"""Changes claimed together go out as one notification per subscription, each entity once."""

from __future__ import annotations

from urbis.broker.container import Broker
from urbis.context.actor import DEFAULT_TENANT, Actor
from urbis.context.jsonld import core_term_map
from urbis.context.model import Entity
from urbis.storage.base import Applied, OutboxChange

V = "https://uri.etsi.org/ngsi-ld/default-context/"


def vehicle(n: int, speed: int) -> Entity:
    """A Vehicle with a speed."""
    return Entity(f"urn:ngsi-ld:Vehicle:{n}", [V + "Vehicle"],
                  {V + "speed": [{"type": "Property", "value": speed}]})


def row(seq: int, *changes: tuple[Entity | None, Entity | None]) -> OutboxChange:
    """An outbox row of the default tenant."""
    out = []
    for before, after in changes:
        state = after if after is not None else before
        assert state is not None
        out.append(Applied(state.id, before, after))
    return OutboxChange(seq, DEFAULT_TENANT, out, 0.0)


async def test_rows_claimed_together_make_one_notification_per_entity_round(
        broker: Broker) -> None:
    await broker.subscriptions.create(Actor(), {
        "type": "Subscription", "entities": [{"type": "Vehicle"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}}, core_term_map())
    await broker.notifier.index.refresh()
    one, two = vehicle(1, 10), vehicle(2, 20)
    rows = [row(1, (None, one)), row(2, (None, two)),
            row(3, (one, vehicle(1, 11)))]  # vehicle 1 again: a second notification
    ready = await broker.notifier.builder.from_changes(rows, "2026-01-01T00:00:00Z")
    ids = [[e["id"] for e in r.body["data"]] for r in ready]
    assert ids == [["urn:ngsi-ld:Vehicle:1", "urn:ngsi-ld:Vehicle:2"],
                   ["urn:ngsi-ld:Vehicle:1"]]
    assert [r.body["data"][0]["speed"]["value"] for r in ready] == [10, 11]
