"""The pipeline's pure parts and its coalescing queue, without HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbis.agents.coalesce import Coalescer, Full, Item
from urbis.agents.measure_map import MappingError, apply, mutation
from urbis.agents.measure_plan import compile_plan
from urbis.context.device_parse import parse_device, parse_group
from urbis.context.device_values import kind_of
from urbis.context.devices import Device
from urbis.context.errors import BadRequestData
from urbis.context.jsonld import core_term_map
from urbis.context.model import GEO_PROPERTY, PROPERTY, RELATIONSHIP
from urbis.decoders.base import Measurement

TM = core_term_map()
NOW = "2026-01-01T00:00:00Z"
GROUP = parse_group({"apikey": "k", "entity_type": "Sensor", "attributes": [
    {"object_id": "t", "name": "temperature", "type": "Number"},
    {"object_id": "n", "name": "count", "type": "Integer"},
    {"object_id": "on", "name": "active", "type": "Boolean"},
    {"name": "double", "type": "Number", "expression": "temperature * 2"}],
    "static_attributes": [{"name": "site", "type": "Text", "value": "A"}]}, "city", "/", NOW)
PLAN = compile_plan(parse_device({"device_id": "d1"}, "city", "/", NOW, GROUP), GROUP, TM)


@pytest.mark.parametrize(("type_name", "raw", "kind", "value"), [
    ("Number", "25.5", PROPERTY, 25.5), ("Number", " 7 ", PROPERTY, 7),
    ("Number", "1" * 30, PROPERTY, float("1" * 30)), ("Float", 3, PROPERTY, 3),
    ("Integer", "12", PROPERTY, 12), ("Integer", 4.0, PROPERTY, 4),
    ("Boolean", "TRUE", PROPERTY, True), ("Boolean", 0, PROPERTY, False),
    ("Text", 12.5, PROPERTY, "12.5"), ("Text", False, PROPERTY, "false"),
    ("geo:point", "40.4, -3.7", GEO_PROPERTY, {"type": "Point", "coordinates": [-3.7, 40.4]}),
    ("GeoProperty", [1, 2], GEO_PROPERTY, {"type": "Point", "coordinates": [1, 2]}),
    ("Relationship", " urn:ngsi-ld:B:1 ", RELATIONSHIP, "urn:ngsi-ld:B:1"),
    ("DateTime", "2026-01-01T00:00:00Z", PROPERTY,
     {"@type": "DateTime", "@value": "2026-01-01T00:00:00Z"}),
    ("StructuredValue", {"a": 1}, PROPERTY, {"a": 1}), (None, "x", PROPERTY, "x"),
])
def test_values_fit_their_provisioned_type(type_name: str | None, raw: Any, kind: str,
                                           value: Any) -> None:
    from urbis.context.device_values import checked

    found, coerce = kind_of(type_name)
    assert found == kind and checked(found, coerce, raw) == value


@pytest.mark.parametrize(("type_name", "raw"), [
    ("Number", "abc"), ("Number", "1e999"), ("Number", True), ("Number", [1]),
    ("Integer", "1.5"), ("Boolean", "maybe"), ("Boolean", 2), ("Text", {"a": 1}),
    ("geo:point", "1;2"), ("geo:json", {"type": "Point", "coordinates": [1]}),
    ("Relationship", "not a uri"), ("DateTime", "soon"), ("Property", None),
    ("Text", "urn:ngsi-ld:null"),
])
def test_values_that_do_not_fit(type_name: str, raw: Any) -> None:
    from urbis.context.device_values import checked

    kind, coerce = kind_of(type_name)
    with pytest.raises(BadRequestData):
        checked(kind, coerce, raw)


def test_groups_are_separate_updates_and_statics_go_first() -> None:
    updates = apply(PLAN, [Measurement("t", "1", group=0), Measurement("t", "2", group=1)],
                    NOW, TM)
    assert len(updates) == 2
    temperature = TM.expand("temperature")
    assert [u.attrs[temperature][0]["value"] for u in updates] == [1, 2]
    assert updates[0].statics and not updates[1].statics
    assert updates[1].attrs[TM.expand("double")][0]["value"] == 4


def test_mutation_creates_then_appends() -> None:
    [update] = apply(PLAN, [Measurement("t", "1")], NOW, TM)
    created = mutation(update, NOW)(None)
    assert created.result == "created" and created.entity is not None
    assert set(created.entity.attrs) == {TM.expand(n) for n in ("temperature", "double", "site")}
    again = mutation(update, "2026-01-01T00:00:01Z")(created.entity)
    assert again.entity is not None
    assert again.entity.attrs[TM.expand("site")][0]["modifiedAt"] == NOW  # static unchanged
    [empty] = apply(PLAN, [], NOW, TM)
    assert mutation(empty, NOW)(again.entity).entity is None  # nothing to write


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                    st.floats(), st.lists(st.integers(), max_size=3),
                    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["t", "n", "on", "x", "location", "id", "a b", ""]),
                          _VALUES, st.integers(0, 2)), max_size=8))
def test_apply_either_maps_or_rejects(measures: list[tuple[str, Any, int]]) -> None:
    try:
        updates = apply(PLAN, [Measurement(n, v, group=g) for n, v, g in measures], NOW, TM)
    except MappingError as err:
        assert err.reason in ("invalid_value", "expression")
        return
    for update in updates:
        entity = mutation(update, NOW)(None).entity
        assert entity is not None and entity.id == "urn:ngsi-ld:Sensor:d1"


# --- the coalescing queue ---------------------------------------------------------------------


async def test_batches_by_tenant_in_order_and_close_flushes() -> None:
    written: list[tuple[str, list[Any]]] = []

    async def write(tenant: str, items: list[Item]) -> None:
        written.append((tenant, [u for i in items for u in i.updates]))
        for item in items:
            if item.future is not None:
                item.future.set_result(None)

    queue = Coalescer(write, batch_size=10, delay=0.01, queue_size=100)
    loop = asyncio.get_running_loop()
    futures = []
    for n in range(25):
        future = loop.create_future()
        futures.append(future)
        await queue.put(Item("a" if n % 5 else "b", [n], future))
    await asyncio.gather(*futures)
    by_tenant: dict[str, list[Any]] = {}
    for tenant, updates in written:
        assert len(updates) <= 10
        by_tenant.setdefault(tenant, []).extend(updates)
    assert by_tenant["b"] == [0, 5, 10, 15, 20]
    assert by_tenant["a"] == [n for n in range(25) if n % 5]
    queue.offer(Item("a", [99]))
    await queue.close()
    assert written[-1] == ("a", [99]) and queue.pending == 0
    with pytest.raises(Full):
        queue.offer(Item("a", [100]))


async def test_backpressure_and_writer_failures() -> None:
    gate = asyncio.Event()

    async def write(tenant: str, items: list[Item]) -> None:
        await gate.wait()
        raise RuntimeError("boom")

    queue = Coalescer(write, batch_size=2, delay=0, queue_size=2)
    loop = asyncio.get_running_loop()
    first: asyncio.Future[None] = loop.create_future()
    queue.offer(Item("t", [1, 2], first))
    with pytest.raises(Full):
        queue.offer(Item("t", [3]))
    with pytest.raises(Full):
        await queue.put(Item("t", [3]), timeout=0.05)
    waiting = asyncio.create_task(queue.put(Item("t", [4]), timeout=5))
    gate.set()
    with pytest.raises(RuntimeError):
        await first
    await waiting  # room again once the failed batch is done
    await queue.close()


_BODY = st.dictionaries(
    st.sampled_from(["apikey", "device_id", "resource", "entity_type", "entity_name",
                     "attributes", "static_attributes", "commands", "explicitAttrs",
                     "autoprovision", "timestamp", "expectedInterval", "payload_decoder", "x"]),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                 lambda inner: st.lists(inner, max_size=3) |
                 st.dictionaries(st.sampled_from(["name", "type", "value", "object_id",
                                                  "expression", "metadata", "unitCode"]),
                                 inner, max_size=4), max_leaves=10), max_size=8)


@settings(max_examples=300, deadline=None)
@given(_BODY)
def test_provisioning_bodies_parse_or_say_why(body: dict[str, Any]) -> None:
    from urbis.context.errors import NgsiError

    for parse in (parse_group, parse_device):
        try:
            parsed = parse(body, "city", "/", NOW)
        except NgsiError as err:
            assert err.status == 400 and err.extra["fiware"] == "WRONG_SYNTAX"
            continue
        if isinstance(parsed, Device):
            compile_plan(parsed, None, TM)  # what parses compiles
