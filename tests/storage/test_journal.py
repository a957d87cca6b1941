"""Journals see each batch's changes inside its transaction, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from test_entity_store_contract import NOW, V, creator, ent

from urbis.context.errors import BadRequestData
from urbis.context.model import Entity
from urbis.storage.base import Applied, Change, EntityStore, Mutation


def _journal(store: EntityStore, seen: list[list[Applied]], fail: bool = False) -> None:
    """Register a journal recording what it sees (raising when `fail`)."""

    def record(applied: list[Applied]) -> None:
        seen.append(list(applied))
        if fail:
            raise BadRequestData("journal refused")

    if hasattr(store, "db") and type(store).__name__.startswith("Sqlite"):
        store.add_journal(lambda _conn, _tenant, applied: record(applied))  # type: ignore[attr-defined]
    else:
        async def journal(_conn: Any, _tenant: str, applied: list[Applied]) -> None:
            record(applied)

        store.add_journal(journal)  # type: ignore[attr-defined]


def setter(entity_id: str, speed: int) -> Mutation:
    """A mutation setting `speed` in place on the copy it is given."""

    def fn(cur: Entity | None) -> Change:
        assert cur is not None
        cur.attrs[V + "speed"] = [{"type": "Property", "value": speed}]
        cur.modified_at = NOW
        return Change(cur)

    return Mutation(entity_id, fn)


def speed(e: Entity | None) -> Any:
    assert e is not None
    return e.attrs[V + "speed"][0]["value"]


async def test_journal_sees_before_and_after(entity_store: EntityStore) -> None:
    seen: list[list[Applied]] = []
    _journal(entity_store, seen)
    await entity_store.mutate("t1", [creator(ent(1, speed=1)), creator(ent(2, speed=2))])
    assert [(a.entity_id, a.before, speed(a.after)) for a in seen[0]] == [
        ("urn:ngsi-ld:Car:1", None, 1), ("urn:ngsi-ld:Car:2", None, 2)]
    car1, car2 = "urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"
    # the same entity twice, and another in between: each Applied keeps its own copies
    await entity_store.mutate("t1", [setter(car1, 10), setter(car2, 20), setter(car1, 11)])
    assert [(a.entity_id, speed(a.before), speed(a.after)) for a in seen[1]] == [
        (car1, 1, 10), (car2, 2, 20), (car1, 10, 11)]
    await entity_store.mutate("t1", [Mutation(car2, lambda cur: Change(delete=True)),
                                     Mutation("urn:ngsi-ld:Car:404",
                                              lambda cur: Change(delete=True))])
    assert [(a.entity_id, speed(a.before), a.after) for a in seen[2]] == [(car2, 20, None)]
    # a batch that writes nothing is not journaled
    await entity_store.mutate("t1", [Mutation(car1, lambda cur: Change())])
    assert len(seen) == 3


async def test_failing_journal_rolls_the_batch_back(entity_store: EntityStore) -> None:
    await entity_store.mutate("t1", [creator(ent(1, speed=1))])
    seen: list[list[Applied]] = []
    _journal(entity_store, seen, fail=True)
    with pytest.raises(BadRequestData):
        await entity_store.mutate("t1", [setter("urn:ngsi-ld:Car:1", 5)])
    assert seen
    assert speed(await entity_store.get("t1", "urn:ngsi-ld:Car:1")) == 1
