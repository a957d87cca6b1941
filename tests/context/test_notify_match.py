"""Matching changes against subscriptions, and rendering notifications (pure, no I/O)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urbis.context.changes import decode_changes, encode_changes
from urbis.context.jsonld import core_term_map
from urbis.context.model import Entity
from urbis.context.notification import message, notification_body, render_change
from urbis.context.notify_match import EntityChange, trigger_reason
from urbis.context.subscription_parse import parse_subscription

NOW = "2026-01-01T00:00:00.000000Z"
D = "https://uri.etsi.org/ngsi-ld/default-context/"
TM = core_term_map()


def sub(**members: Any) -> Any:
    """A subscription from its payload (terms of the core context)."""
    body = {"type": "Subscription", "entities": [{"type": "Vehicle"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}}, **members}
    return parse_subscription(body, TM, NOW, "urn:ngsi-ld:Subscription:1")


def car(speed: Any = 10, kind: str = "Vehicle", **attrs: Any) -> Entity:
    """A car entity with a speed (and more attributes: name -> value)."""
    values = {"speed": speed, **attrs}
    return Entity("urn:ngsi-ld:Vehicle:1", [D + kind],
                  {D + k: [{"type": "Property", "value": v}] for k, v in values.items()
                   if v is not None})


def reason(subscription: Any, before: Entity | None, after: Entity | None) -> str | None:
    return trigger_reason(subscription, EntityChange.of(before, after))


@pytest.mark.parametrize(("triggers", "before", "after", "expected"), [
    (None, None, car(), "attributeCreated"),
    (["entityCreated"], None, car(), "entityCreated"),
    (None, car(1), car(2), "attributeUpdated"),
    (None, car(1), car(1), None),  # nothing changed
    (["entityUpdated"], car(1), car(2), "entityUpdated"),
    (["attributeCreated"], car(1), car(1, color="red"), "attributeCreated"),
    (["attributeDeleted"], car(1, color="red"), car(1), "attributeDeleted"),
    (None, car(1, color="red"), car(1), None),  # default triggers ignore deletions
    (["entityDeleted"], car(), None, "entityDeleted"),
    (None, car(), None, None),
    (["entityUpdated"], car(kind="Vehicle"), car(kind="Vehicle", speed=None), "entityUpdated"),
])
def test_triggers(triggers: list[str] | None, before: Entity | None, after: Entity | None,
                  expected: str | None) -> None:
    members = {"notificationTrigger": triggers} if triggers else {}
    assert reason(sub(**members), before, after) == expected


def test_watched_attributes() -> None:
    watching = sub(watchedAttributes=["speed"])
    assert reason(watching, car(1, color="a"), car(1, color="b")) is None
    assert reason(watching, car(1), car(2)) == "attributeUpdated"
    assert reason(watching, None, car(1)) == "attributeCreated"
    assert reason(watching, None, Entity("urn:x:1", [D + "Vehicle"])) is None
    deleting = sub(watchedAttributes=["color"], notificationTrigger=["entityDeleted"])
    assert reason(deleting, car(1), None) is None
    assert reason(deleting, car(1, color="a"), None) == "entityDeleted"


def test_entities_selectors() -> None:
    by_pattern = sub(entities=[{"type": "Vehicle", "idPattern": "Vehicle:[0-9]+$"}])
    assert reason(by_pattern, None, car()) == "attributeCreated"
    by_id = sub(entities=[{"type": "Vehicle", "id": "urn:ngsi-ld:Vehicle:2"}])
    assert reason(by_id, None, car()) is None
    other_type = sub(entities=[{"type": "Bus,Tram"}])
    assert reason(other_type, None, car()) is None
    assert reason(other_type, None, car(kind="Tram")) == "attributeCreated"


def test_q_scope_and_geo() -> None:
    fast = sub(q="speed>50")
    assert reason(fast, car(10), car(60)) == "attributeUpdated"
    assert reason(fast, car(60), car(10)) is None
    scoped = sub(scopeQ="/Madrid/#")
    madrid = car(1)
    madrid.scopes = ["/Madrid/Centro"]
    assert reason(scoped, None, madrid) == "attributeCreated"
    assert reason(scoped, None, car(1)) is None
    near = sub(geoQ={"georel": "near;maxDistance==1000", "geometry": "Point",
                     "coordinates": [-3.7, 40.4]})
    here = car(1)
    here.attrs["https://uri.etsi.org/ngsi-ld/location"] = [
        {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-3.7, 40.401]}}]
    assert reason(near, None, here) == "attributeCreated"
    assert reason(near, None, car(1)) is None


def test_rendering_formats_and_show_changes() -> None:
    changes = sub(notification={"endpoint": {"uri": "http://h/n"}, "showChanges": True})
    out = render_change(changes, EntityChange.of(car(1, color="red"), car(2, color="red")),
                        TM, NOW)
    assert out["speed"] == {"type": "Property", "value": 2, "previousValue": 1}
    assert "previousValue" not in out["color"]
    concise = sub(notification={"endpoint": {"uri": "http://h/n"}, "format": "concise",
                                "showChanges": True})
    out = render_change(concise, EntityChange.of(car(1), car(2)), TM, NOW)
    assert out["speed"] == {"value": 2, "previousValue": 1}
    kv = sub(notification={"endpoint": {"uri": "http://h/n"}, "format": "keyValues",
                           "attributes": ["speed"]})
    out = render_change(kv, EntityChange.of(car(1, color="x"), car(2, color="x")), TM, NOW)
    assert out == {"id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle", "speed": 2}
    gone = render_change(sub(), EntityChange.of(car(1, color="x"), car(1)), TM, NOW)
    assert gone["color"] == {"type": "Property", "value": "urn:ngsi-ld:null", "deletedAt": NOW}
    deleted = render_change(sub(), EntityChange.of(car(1), None), TM, NOW)
    assert deleted == {"id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle", "deletedAt": NOW}


def test_messages_per_accept() -> None:
    plain = sub()
    body = notification_body(plain, [], NOW, "urn:ngsi-ld:Notification:1")
    headers, out = message(plain, body, "city")
    assert "@context" not in out and 'rel="http://www.w3.org/ns/json-ld#context"' in \
        headers["Link"]
    assert headers["NGSILD-Tenant"] == "city"
    ld = sub(notification={"endpoint": {"uri": "http://h/n", "accept": "application/ld+json"}})
    headers, out = message(ld, body, None)
    assert out["@context"] == ld.context and "Link" not in headers
    geo = sub(notification={"endpoint": {"uri": "http://h/n", "accept": "application/geo+json"}})
    _, out = message(geo, {**body, "data": [{"id": "urn:x:1", "type": "T"}]}, None)
    assert out["data"]["type"] == "FeatureCollection"


values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                      | st.text(max_size=5),
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)


@given(st.lists(st.tuples(st.booleans(), st.booleans(), values), max_size=4))
def test_changes_codec_round_trips(items: list[tuple[bool, bool, Any]]) -> None:
    triples = []
    for n, (has_before, has_after, value) in enumerate(items):
        entity = car(value) if value is not None else car(0)
        triples.append((f"urn:x:{n}", copy.deepcopy(entity) if has_before else None,
                        entity if has_after else None))
    assert decode_changes(encode_changes(triples)) == [
        (i, None if b is None else Entity(i, b.types, b.attrs, b.scopes),
         None if a is None else Entity(i, a.types, a.attrs, a.scopes)) for i, b, a in triples]
