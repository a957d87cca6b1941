"""The EntityStore contract: every backend passes these unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from urbis.context.errors import AlreadyExists, ResourceNotFound
from urbis.context.geo import parse_geo_query
from urbis.context.model import Entity
from urbis.context.operations import create
from urbis.context.query.q import parse_q
from urbis.context.query.scope import parse_scope_q
from urbis.context.query.types import parse_type_expr
from urbis.storage.base import Change, EntityQuery, EntityStore, Mutation

V = "https://example.org/vocab/"
NOW = "2026-01-01T00:00:00.000000Z"


def ent(n: int, type_: str = "Car", **attrs: Any) -> Entity:
    """A small entity in internal form."""
    e = Entity(id=f"urn:ngsi-ld:{type_}:{n}", types=[V + type_])
    for name, value in attrs.items():
        if name == "location":
            e.attrs["https://uri.etsi.org/ngsi-ld/location"] = [
                {"type": "GeoProperty", "value": {"type": "Point", "coordinates": value}}]
        else:
            e.attrs[V + name] = [{"type": "Property", "value": value}]
    return e


def creator(e: Entity) -> Mutation:
    """A mutation creating `e`."""
    return Mutation(e.id, lambda cur: Change(create(cur, e, NOW)))


async def seed(store: EntityStore, tenant: str = "t1") -> None:
    """Ten cars and five bikes with speeds and locations around Madrid."""
    muts = [creator(ent(i, "Car", speed=i * 10, brand="seat" if i % 2 else "fiat",
                        location=[-3.70 + i * 0.01, 40.41])) for i in range(10)]
    muts += [creator(ent(i, "Bike", speed=i)) for i in range(5)]
    outcomes = await store.mutate(tenant, muts)
    assert all(o.error is None for o in outcomes)


def ids(result: Any) -> set[str]:
    """Entity ids of a query result."""
    return {e.id for e in result.entities}


async def test_create_get_roundtrip(entity_store: EntityStore) -> None:
    await seed(entity_store)
    e = await entity_store.get("t1", "urn:ngsi-ld:Car:3")
    assert e is not None
    assert e.types == [V + "Car"]
    assert e.attrs[V + "speed"][0]["value"] == 30
    assert e.created_at == NOW
    assert await entity_store.get("t1", "urn:ngsi-ld:Car:99") is None


async def test_tenants_are_isolated(entity_store: EntityStore) -> None:
    await seed(entity_store, "t1")
    assert await entity_store.tenant_exists("t1")
    assert not await entity_store.tenant_exists("t2")
    assert await entity_store.get("t2", "urn:ngsi-ld:Car:3") is None
    q = EntityQuery(type_expr=parse_type_expr("Car", lambda t: V + t))
    assert (await entity_store.query("t2", q)).entities == []


async def test_duplicate_create_is_refused_and_batch_goes_on(entity_store: EntityStore) -> None:
    await seed(entity_store)
    outcomes = await entity_store.mutate("t1", [creator(ent(1)), creator(ent(77))])
    assert isinstance(outcomes[0].error, AlreadyExists)
    assert outcomes[1].error is None
    assert await entity_store.get("t1", "urn:ngsi-ld:Car:77") is not None


async def test_mutation_sees_current_state_and_errors_change_nothing(
        entity_store: EntityStore) -> None:
    await seed(entity_store)

    def boom(cur: Entity | None) -> Change:
        assert cur is not None
        cur.attrs.clear()  # a failing mutation may scribble on its private copy
        raise ResourceNotFound("nope")

    def bump(cur: Entity | None) -> Change:
        assert cur is not None
        cur.attrs[V + "speed"][0]["value"] += 1
        return Change(cur)

    outcomes = await entity_store.mutate(
        "t1", [Mutation("urn:ngsi-ld:Car:2", boom), Mutation("urn:ngsi-ld:Car:2", bump),
               Mutation("urn:ngsi-ld:Car:2", bump)])
    assert isinstance(outcomes[0].error, ResourceNotFound)
    e = await entity_store.get("t1", "urn:ngsi-ld:Car:2")
    assert e is not None and e.attrs[V + "speed"][0]["value"] == 22


async def test_delete(entity_store: EntityStore) -> None:
    await seed(entity_store)
    await entity_store.mutate("t1", [Mutation("urn:ngsi-ld:Car:1",
                                              lambda cur: Change(delete=True))])
    assert await entity_store.get("t1", "urn:ngsi-ld:Car:1") is None
    geo = parse_geo_query("near;maxDistance==100000", "Point", "[-3.7,40.41]", None, lambda s: s)
    result = await entity_store.query("t1", EntityQuery(geo=geo, limit=100))
    assert "urn:ngsi-ld:Car:1" not in ids(result)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("speed>50", {6, 7, 8, 9}),
        ("speed==20", {2}),
        ("speed==10..30", {1, 2, 3}),
        ("speed==10,40", {1, 4}),
        ('brand=="seat";speed<50', {1, 3}),
        ('brand=="fiat"|speed==90', {0, 2, 4, 6, 8, 9}),
        ("brand~=se.t", {1, 3, 5, 7, 9}),
        ("!brand", set()),
    ],
)
async def test_q_runs_in_the_store(entity_store: EntityStore, q: str, expected: set[int]) -> None:
    await seed(entity_store)
    query = EntityQuery(type_expr=parse_type_expr("Car", lambda t: V + t),
                        q=parse_q(q, lambda t: V + t), limit=100)
    assert ids(await entity_store.query("t1", query)) == {f"urn:ngsi-ld:Car:{i}" for i in expected}


async def test_type_expressions(entity_store: EntityStore) -> None:
    await seed(entity_store)
    both = parse_type_expr("Car,Bike", lambda t: V + t)
    result = await entity_store.query("t1", EntityQuery(type_expr=both, limit=100, count=True))
    assert result.count == 15
    none = parse_type_expr("(Car;Bike)", lambda t: V + t)
    assert (await entity_store.query("t1", EntityQuery(type_expr=none))).entities == []


async def test_paging_count_and_order(entity_store: EntityStore) -> None:
    await seed(entity_store)
    car = parse_type_expr("Car", lambda t: V + t)
    page = await entity_store.query("t1", EntityQuery(
        type_expr=car, limit=3, offset=2, count=True, order_by=[(V + "speed", True)]))
    assert page.count == 10
    assert [e.id for e in page.entities] == [f"urn:ngsi-ld:Car:{i}" for i in (7, 6, 5)]
    only_count = await entity_store.query("t1", EntityQuery(type_expr=car, limit=0, count=True))
    assert only_count.entities == [] and only_count.count == 10


async def test_ids_pattern_and_attrs(entity_store: EntityStore) -> None:
    await seed(entity_store)
    r = await entity_store.query("t1", EntityQuery(ids=["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Bike:1"]))
    assert ids(r) == {"urn:ngsi-ld:Car:1", "urn:ngsi-ld:Bike:1"}
    r = await entity_store.query("t1", EntityQuery(id_pattern="^urn:ngsi-ld:Bike:[0-2]$"))
    assert ids(r) == {f"urn:ngsi-ld:Bike:{i}" for i in range(3)}
    r = await entity_store.query("t1", EntityQuery(attrs=[V + "brand"], limit=100))
    assert len(r.entities) == 10


async def test_geo_near_in_store(entity_store: EntityStore) -> None:
    await seed(entity_store)
    geo = parse_geo_query("near;maxDistance==2000", "Point", "[-3.70,40.41]", None, lambda s: s)
    r = await entity_store.query("t1", EntityQuery(geo=geo, limit=100))
    # 0.01 degrees of longitude at 40.41N is about 848 m
    assert ids(r) == {f"urn:ngsi-ld:Car:{i}" for i in (0, 1, 2)}


async def test_scope_query(entity_store: EntityStore) -> None:
    e = ent(1, "Car", speed=1)
    e.scopes = ["/Madrid/Centro"]
    f = ent(2, "Car", speed=2)
    f.scopes = ["/Barcelona"]
    await entity_store.mutate("t1", [creator(e), creator(f)])
    r = await entity_store.query("t1", EntityQuery(scope_q=parse_scope_q("/Madrid/#")))
    assert ids(r) == {e.id}


async def test_delete_by_type_and_discovery(entity_store: EntityStore) -> None:
    await seed(entity_store)
    types = {t.type: t for t in await entity_store.types("t1")}
    assert types[V + "Car"].count == 10
    assert V + "brand" in types[V + "Car"].attributes
    attrs = {a.name: a for a in await entity_store.attributes("t1")}
    assert attrs[V + "speed"].types == {V + "Car", V + "Bike"}
    assert await entity_store.delete_by_type("t1", V + "Bike") == 5
    assert V + "Bike" not in {t.type for t in await entity_store.types("t1")}


async def test_injection_in_ids_and_types_is_data(entity_store: EntityStore) -> None:
    await seed(entity_store)
    evil = "urn:x:'); DROP TABLE entities; --"
    r = await entity_store.query("t1", EntityQuery(ids=[evil]))
    assert r.entities == []
    t = parse_type_expr("Car", lambda _t: "x' OR 1=1 --")
    assert (await entity_store.query("t1", EntityQuery(type_expr=t))).entities == []
    assert await entity_store.get("t1", "urn:ngsi-ld:Car:1") is not None


async def scan_all(store: EntityStore, tenant: str, query: EntityQuery) -> list[str]:
    """Every id a keyset scan returns, page after page."""
    out: list[str] = []
    after: str | None = None
    while page := await store.scan(tenant, query, after):
        assert len(page) <= query.limit
        out += [e.id for e in page]
        after = page[-1].id
    return out


async def test_scan_pages_in_id_order(entity_store: EntityStore) -> None:
    await seed(entity_store)
    everything = await scan_all(entity_store, "t1", EntityQuery(limit=4))
    assert len(everything) == 15 and everything == sorted(everything)
    car = parse_type_expr("Car", lambda t: V + t)
    cars = await scan_all(entity_store, "t1", EntityQuery(type_expr=car, limit=3, offset=5,
                                                          order_by=[(V + "speed", True)]))
    assert cars == sorted(f"urn:ngsi-ld:Car:{i}" for i in range(10))
    fast = EntityQuery(type_expr=car, q=parse_q("speed>50", lambda t: V + t), limit=2)
    expected = [f"urn:ngsi-ld:Car:{i}" for i in range(6, 10)]
    assert await scan_all(entity_store, "t1", fast) == expected
    last = await entity_store.scan("t1", EntityQuery(limit=10), everything[-1])
    assert last == []
    assert await entity_store.scan("t2", EntityQuery(limit=10)) == []


async def test_scan_orders_ids_by_code_point(entity_store: EntityStore) -> None:
    names = ["é", "a", "Z", "B", "a0", "_", "~", "€"]
    muts = [creator(Entity(id=f"urn:x:{n}", types=[V + "T"])) for n in names]
    assert all(o.error is None for o in await entity_store.mutate("t1", muts))
    got = await scan_all(entity_store, "t1", EntityQuery(limit=3))
    assert got == sorted(f"urn:x:{n}" for n in names)  # Python compares by code point
    page = await entity_store.scan("t1", EntityQuery(limit=1), "urn:x:a")
    assert [e.id for e in page] == ["urn:x:a0"]
    assert page[0].types == [V + "T"] and page[0].created_at == NOW
