"""The TemporalStore contract: every backend passes these unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from urbis.context.model import Entity
from urbis.context.operations import create
from urbis.context.query.q import parse_q
from urbis.context.query.types import parse_type_expr
from urbis.context.temporal import TimeFilter, from_micros, to_micros
from urbis.context.temporal_records import record_of
from urbis.settings import Settings
from urbis.storage.base import Change, EntityQuery, Mutation
from urbis.storage.registry import Stores, open_stores
from urbis.storage.temporal_base import Retention, TemporalQuery, TemporalStore

V = "https://example.org/vocab/"
CAR = "urn:ngsi-ld:Car:1"
DAY = 86_400_000_000


@pytest.fixture
async def stores(settings: Settings) -> AsyncIterator[Stores]:
    """Every store of the backend, opened, history on."""
    opened = await open_stores(settings.store, synchronous="normal")
    yield opened
    await opened.close()


@pytest.fixture
def temporal(stores: Stores) -> TemporalStore:
    """The TemporalStore of the backend."""
    assert stores.temporal is not None
    return stores.temporal


def day(n: int) -> str:
    """Midnight of 2020-01-n (n may exceed 31: it is a day count)."""
    return from_micros(to_micros("2020-01-01T00:00:00Z") + (n - 1) * DAY)


def car(n: int = 1, **attrs: Any) -> Entity:
    """A car with Property attributes."""
    e = Entity(f"urn:ngsi-ld:Car:{n}", [V + "Car"])
    for name, value in attrs.items():
        e.attrs[V + name] = [{"type": "Property", "value": value}]
    return e


def setter(entity_id: str, when: str, **attrs: Any) -> Mutation:
    """A mutation setting attributes (observed `when`) as a PATCH would."""

    def fn(cur: Entity | None) -> Change:
        assert cur is not None
        for name, value in attrs.items():
            cur.attrs[V + name] = [{"type": "Property", "value": value, "observedAt": when,
                                    "createdAt": when, "modifiedAt": when}]
        cur.modified_at = when
        return Change(cur)

    return Mutation(entity_id, fn)


def query(ids: list[str] | None = None, **kw: Any) -> TemporalQuery:
    """A TemporalQuery on some ids (or all cars) with TimeFilter/aggregation keywords."""
    time = TimeFilter(**{k: kw.pop(k) for k in list(kw) if k in TimeFilter.__slots__})
    entities = EntityQuery(ids=ids, type_expr=None if ids else parse_type_expr(V + "Car"),
                           attrs=kw.pop("attrs", None), limit=kw.pop("limit", 20),
                           offset=kw.pop("offset", 0), count=kw.pop("count", False))
    return TemporalQuery(entities, time, **kw)


def values(entity: Any, attr: str = "speed") -> list[Any]:
    """The values of an attribute's instances, in time order."""
    return [i.get("value") for i in entity.instances.get(V + attr, [])]


async def history(stores: Stores, n: int = 5, entity: str = CAR) -> None:
    """A car whose speed was n, then 2..n on the following days (brand set once)."""
    number = int(entity.rsplit(":", 1)[1])
    await stores.entities.mutate("t1", [Mutation(entity, lambda cur: Change(
        create(cur, car(number), day(1))))])
    for i in range(1, n + 1):
        await stores.entities.mutate("t1", [setter(entity, day(i), speed=i)])
    await stores.entities.mutate("t1", [setter(entity, day(n), brand="seat")])


async def test_journal_records_only_changed_instances(stores: Stores,
                                                      temporal: TemporalStore) -> None:
    await history(stores)
    page = await temporal.query("t1", query([CAR]))
    [e] = page.entities
    assert values(e) == [1, 2, 3, 4, 5]  # the brand change did not record speed again
    assert values(e, "brand") == ["seat"]
    first = e.instances[V + "speed"][0]
    assert first["observedAt"] == day(1) and first["instanceId"].startswith("urn:ngsi-ld:")
    assert e.types == [V + "Car"] and e.deleted_at is None
    assert page.truncated is None


async def test_deletions_are_recorded(stores: Stores, temporal: TemporalStore) -> None:
    await history(stores, 2)

    def drop(cur: Entity | None) -> Change:
        assert cur is not None
        del cur.attrs[V + "brand"]
        return Change(cur)

    await stores.entities.mutate("t1", [Mutation(CAR, drop)])
    [e] = (await temporal.query("t1", query([CAR]))).entities
    assert values(e, "brand") == ["seat", "urn:ngsi-ld:null"]
    assert "deletedAt" in e.instances[V + "brand"][-1]
    await stores.entities.mutate("t1", [Mutation(CAR, lambda cur: Change(delete=True))])
    [e] = (await temporal.query("t1", query([CAR]))).entities
    assert e.deleted_at is not None
    assert values(e)[-1] == "urn:ngsi-ld:null"


async def test_time_filters(stores: Stores, temporal: TemporalStore) -> None:
    await history(stores)
    at = to_micros(day(3))

    async def got(**kw: Any) -> list[Any]:
        return values((await temporal.query("t1", query([CAR], **kw))).entities[0])

    assert await got(timerel="before", time_at=at) == [1, 2]
    assert await got(timerel="after", time_at=at) == [4, 5]
    assert await got(timerel="between", time_at=at, end_time_at=at + DAY) == [3]
    assert await got(last_n=2) == [4, 5]
    assert await got(timerel="before", time_at=at, last_n=1) == [2]


async def test_instance_limit_truncates_every_attribute_to_one_range(
        stores: Stores, temporal: TemporalStore) -> None:
    await history(stores, 6)
    await stores.entities.mutate("t1", [setter(CAR, day(2), level=1),
                                        setter(CAR, day(5), level=2)])
    page = await temporal.query("t1", query([CAR], instance_limit=3))
    [e] = page.entities
    assert values(e) == [1, 2, 3]
    assert values(e, "level") == [1]  # day 5 is past the range returned
    assert page.truncated == (to_micros(day(1)), to_micros(day(3)))
    page = await temporal.query("t1", query([CAR], instance_limit=3, last_n=5))
    assert values(page.entities[0]) == [4, 5, 6]
    assert page.truncated is not None and page.truncated[1] == to_micros(day(6))


async def test_aggregates_per_bucket(stores: Stores, temporal: TemporalStore) -> None:
    await history(stores, 4)
    q = query([CAR], aggr_methods=["totalCount", "distinctCount", "sum", "avg", "min", "max",
                                   "stddev", "sumsq"], aggr_period=2 * DAY,
              timerel="after", time_at=to_micros(day(1)) - 1, attrs=[V + "speed"])
    [e] = (await temporal.query("t1", q)).entities
    [agg] = e.aggregates[V + "speed"]
    assert agg.attr_type == "Property" and agg.dataset_id is None
    start = to_micros(day(1)) - 1
    assert agg.values["sum"] == [(3, start, start + 2 * DAY), (7, start + 2 * DAY, start + 4 * DAY)]
    assert [v for v, _, _ in agg.values["avg"]] == [1.5, 3.5]
    assert [v for v, _, _ in agg.values["min"]] == [1, 3]
    assert [v for v, _, _ in agg.values["max"]] == [2, 4]
    assert [v for v, _, _ in agg.values["totalCount"]] == [2, 2]
    assert [v for v, _, _ in agg.values["distinctCount"]] == [2, 2]
    assert [v for v, _, _ in agg.values["sumsq"]] == [5, 25]
    assert [v for v, _, _ in agg.values["stddev"]] == [0.5, 0.5]
    whole = query([CAR], aggr_methods=["max"], attrs=[V + "speed"])
    [e] = (await temporal.query("t1", whole)).entities
    assert e.aggregates[V + "speed"][0].values["max"] == [
        (4, to_micros(day(1)), to_micros(day(4)))]


async def test_entity_filters_and_paging(stores: Stores, temporal: TemporalStore) -> None:
    for n in (1, 2, 3):
        await history(stores, 2, f"urn:ngsi-ld:Car:{n}")
    page = await temporal.query("t1", query(limit=2, count=True))
    assert [e.id for e in page.entities] == ["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"]
    assert page.count == 3
    page = await temporal.query("t1", query(limit=2, offset=2))
    assert [e.id for e in page.entities] == ["urn:ngsi-ld:Car:3"]
    await stores.entities.mutate("t1", [setter("urn:ngsi-ld:Car:2", day(9), speed=99)])
    current = query()
    current.entities.q = parse_q("speed>50", lambda t: V + t)
    assert [e.id for e in (await temporal.query("t1", current)).entities] == [
        "urn:ngsi-ld:Car:2"]
    pattern = query()
    pattern.entities.id_pattern = ".*:3$"
    assert [e.id for e in (await temporal.query("t1", pattern)).entities] == [
        "urn:ngsi-ld:Car:3"]
    assert (await temporal.query("t2", query())).entities == []


async def test_temporal_api_writes(stores: Stores, temporal: TemporalStore) -> None:
    e = car(7)
    recs = [record_of(V + "speed", {"type": "Property", "value": v, "observedAt": day(v)}, 0)
            for v in (3, 1, 2)]
    assert await temporal.add("t1", e, recs, day(10)) is True
    assert await temporal.add("t1", car(7), recs[:1], day(11)) is False
    [got] = (await temporal.query("t1", query(["urn:ngsi-ld:Car:7"]))).entities
    assert values(got) == [1, 2, 3, 3]
    key = int(got.instances[V + "speed"][0]["instanceId"].rsplit(":", 1)[1])
    assert await temporal.modify_instance("t1", got.id, V + "speed", key,
                                          {"type": "Property", "value": 10}, day(12))
    assert not await temporal.modify_instance("t1", got.id, V + "nope", key,
                                              {"type": "Property", "value": 1}, day(12))
    [got] = (await temporal.query("t1", query([got.id]))).entities
    assert values(got) == [10, 2, 3, 3]
    assert got.instances[V + "speed"][0]["modifiedAt"] == day(12)
    assert await temporal.delete_instance("t1", got.id, V + "speed", key)
    assert not await temporal.delete_instance("t1", got.id, V + "speed", key)
    assert values((await temporal.query("t1", query([got.id]))).entities[0]) == [2, 3, 3]
    assert await temporal.delete_attr("t1", got.id, V + "speed", None, False)
    assert not await temporal.delete_attr("t1", got.id, V + "speed", None, True)
    assert await temporal.delete_entity("t1", got.id)
    assert not await temporal.delete_entity("t1", got.id)
    assert (await temporal.query("t1", query([got.id]))).entities == []


async def test_retention_expires_by_type(stores: Stores, temporal: TemporalStore) -> None:
    await temporal.add("t1", car(1), [record_of(V + "speed", {"type": "Property", "value": 1},
                                                to_micros(day(1)))], day(1))
    bus = Entity("urn:ngsi-ld:Bus:1", [V + "Bus"])
    await temporal.add("t1", bus, [record_of(V + "speed", {"type": "Property", "value": 1},
                                             to_micros(day(1)))], day(1))
    now = to_micros(day(10))
    rules = Retention(default=30 * DAY, by_type={V + "Bus": 5 * DAY})
    assert await temporal.expire(rules, now) == 1
    assert await temporal.expire(rules, now) == 0
    assert await temporal.expire(Retention(default=DAY), now) == 1


async def test_history_off_records_nothing(settings: Settings) -> None:
    opened = await open_stores(settings.store, synchronous="normal", history=False)
    try:
        await history(opened, 2)
        assert opened.temporal is not None
        assert (await opened.temporal.query("t1", query([CAR]))).entities == []
    finally:
        await opened.close()


async def test_hourly_rollups_agree_with_instances(stores: Stores,
                                                   temporal: TemporalStore) -> None:
    hour = 3_600_000_000
    base = to_micros(day(1))
    recs = [record_of(V + "speed", {"type": "Property", "value": v,
                                    "observedAt": from_micros(base + k * 20 * 60_000_000)}, base)
            for k, v in enumerate([4, 8, 15, 16, 23, 42, 7.5, -3])]
    recs.append(record_of(V + "speed", {"type": "Property", "value": "n/a",
                                        "observedAt": day(2)}, base))
    await temporal.add("t1", car(1), recs, day(1))
    methods = ["totalCount", "sum", "avg", "min", "max", "stddev", "sumsq"]

    async def compare(**kw: Any) -> dict[str, Any]:
        fast = (await temporal.query("t1", query([CAR], aggr_methods=methods, **kw))).entities
        slow = (await temporal.query("t1", query([CAR], aggr_methods=[*methods, "distinctCount"],
                                                 **kw))).entities
        got = fast[0].aggregates[V + "speed"][0].values
        expected = slow[0].aggregates[V + "speed"][0].values
        for method in methods:
            assert [(pytest.approx(v), a, b) for v, a, b in got[method]] == expected[method]
        return got

    got = await compare(aggr_period=hour)
    assert [v for v, _, _ in got["totalCount"]] == [3, 3, 2, 1]
    assert [v for v, _, _ in got["max"]] == [15, 42, 7.5]
    await compare(aggr_period=DAY, timerel="between", time_at=base, end_time_at=base + 2 * hour)
    await compare(aggr_period=0)
    [e] = (await temporal.query("t1", query([CAR]))).entities
    first, second = (int(i["instanceId"].rsplit(":", 1)[1]) for i in e.instances[V + "speed"][:2])
    assert await temporal.modify_instance("t1", CAR, V + "speed", first, {
        "type": "Property", "value": 100, "observedAt": day(3)}, day(4))
    assert await temporal.delete_instance("t1", CAR, V + "speed", second)
    got = await compare(aggr_period=hour)
    assert [v for v, _, _ in got["totalCount"]] == [1, 3, 2, 1, 1]
    assert got["max"][-1][0] == 100
    assert await temporal.expire(Retention(default=DAY), base + 4 * DAY) == 8
    assert (await temporal.query("t1", query([CAR], aggr_methods=methods,
                                             aggr_period=hour))).entities[0].aggregates == {}


async def test_journaled_changes_are_settled_in_bulk(stores: Stores,
                                                     temporal: TemporalStore) -> None:
    """Entity writes only journal their changes; `settle` writes them into histories, and a
    query before that sees them all the same."""
    await history(stores, n=3)
    before = await temporal.query("t1", query([CAR]))  # catches up by itself
    assert values(before.entities[0]) == [1, 2, 3]
    await stores.entities.mutate("t1", [setter(CAR, day(4), speed=4)])
    assert await temporal.backlog() == (1, 1)  # one write batch of one entity
    assert await temporal.settle() >= 1  # the new change
    assert await temporal.settle() == 0  # nothing more
    assert await temporal.backlog() == (0, 0)
    [e] = (await temporal.query("t1", query([CAR]))).entities
    assert values(e) == [1, 2, 3, 4]  # each change recorded once


async def test_settle_steps_are_bounded_and_keep_order(stores: Stores,
                                                       temporal: TemporalStore) -> None:
    for i in range(1, 6):
        await stores.entities.mutate("t1", [Mutation(f"urn:ngsi-ld:Car:{i}", lambda cur, i=i:
                                                     Change(create(cur, car(i, speed=0),
                                                                   day(1))))])
    for step in range(1, 4):
        for i in range(1, 6):
            await stores.entities.mutate("t1", [setter(f"urn:ngsi-ld:Car:{i}", day(1 + step),
                                                       speed=step)])
    settled = 0
    while done := await temporal.settle(limit=4):
        assert done <= 4
        settled += done
    assert settled == 20  # 5 creations, 15 updates: one journaled batch each
    page = await temporal.query("t1", query(limit=10))
    assert [values(e) for e in page.entities] == [[0, 1, 2, 3]] * 5


async def test_journaled_changes_survive_a_restart(settings: Settings) -> None:
    """Acknowledged changes not yet settled are in the history after the store reopens."""
    first = await open_stores(settings.store, synchronous="normal")
    await history(first, n=2)
    await first.close()  # without settling (as if the process had been killed)
    again = await open_stores(settings.store, synchronous="normal")
    try:
        assert again.temporal is not None
        [e] = (await again.temporal.query("t1", query([CAR]))).entities
        assert values(e) == [1, 2] and values(e, "brand") == ["seat"]
    finally:
        await again.close()


async def test_deleting_a_history_forgets_unsettled_changes(stores: Stores,
                                                            temporal: TemporalStore) -> None:
    await history(stores, n=2)
    assert await temporal.delete_entity("t1", CAR)
    assert await temporal.settle() == 0
    assert (await temporal.query("t1", query([CAR]))).entities == []


async def test_settling_keeps_tenants_apart(stores: Stores, temporal: TemporalStore) -> None:
    for tenant, value in (("t1", 1), ("t2", 2), ("t1", 3), ("t2", 4)):
        await stores.entities.mutate(tenant, [Mutation(CAR, lambda cur, v=value: Change(
            create(cur, car(1, speed=v), day(1))) if cur is None else setter(
                CAR, day(v), speed=v).fn(cur))])
    while await temporal.settle():
        pass
    one = (await temporal.query("t1", query([CAR]))).entities[0]
    two = (await temporal.query("t2", query([CAR]))).entities[0]
    assert (values(one), values(two)) == ([1, 3], [2, 4])


async def test_a_batch_that_cannot_be_recorded_does_not_hold_up_the_others(
        stores: Stores, temporal: TemporalStore, backend: str) -> None:
    await history(stores, n=1)
    if backend == "sqlite":  # a journaled batch no history can take (a damaged row)
        sql = "INSERT INTO temporal_pending (tenant, at, size, changes) VALUES (?, ?, ?, ?)"
        await temporal.db.write(  # type: ignore[attr-defined]
            lambda conn: conn.execute(sql, ("t1", 0, 1, b"[[not json")))
    else:
        sql = "INSERT INTO temporal_pending (tenant, at, size, changes) VALUES ($1, $2, $3, $4)"
        await temporal.db.run(  # type: ignore[attr-defined]
            lambda conn: conn.execute(sql, "t1", 0, 1, b"[[not json"))
    await stores.entities.mutate("t1", [setter(CAR, day(2), speed=2)])
    [e] = (await temporal.query("t1", query([CAR]))).entities
    assert values(e) == [1, 2]  # the batches before and after the damaged one
    assert await temporal.settle() == 0
