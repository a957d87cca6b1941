"""Registrations in the domain: parsing, validation, rendering and the matching rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from urbis.context.errors import BadRequestData, NgsiError
from urbis.context.geo import parse_geo_query
from urbis.context.jsonld import TermMap
from urbis.context.query.q import parse_q
from urbis.context.query.types import parse_type_expr
from urbis.context.registration import Registration, from_record, render, to_record
from urbis.context.registration_match import (
    NEWLY_MATCHING,
    NO_LONGER_MATCHING,
    UPDATED,
    RegistrationFilter,
    Selector,
    change_reason,
    conflicts,
    serves,
)
from urbis.context.registration_ops import (
    BITS,
    GROUPS,
    OPERATIONS,
    expand_operations,
    operations_mask,
)
from urbis.context.registration_parse import parse_registration, patch_registration

V = "https://example.org/vocab/"
NOW = "2026-01-01T00:00:00.000000Z"
TM = TermMap.compile([{t: V + t for t in ("Car", "Bus", "speed", "brand", "owner",
                                          "provider")}], core="1.9")
CAR, BUS, SPEED, BRAND, OWNER = (V + t for t in ("Car", "Bus", "speed", "brand", "owner"))


def body(**members: Any) -> dict[str, Any]:
    """A registration of Car entities' speed, with member overrides (None drops)."""
    out: dict[str, Any] = {"type": "ContextSourceRegistration",
                           "information": [{"entities": [{"type": "Car"}],
                                            "propertyNames": ["speed"]}],
                           "endpoint": "http://source.example.org:1026"}
    out.update(members)
    return {k: v for k, v in out.items() if v is not None}


def reg(n: int = 1, **members: Any) -> Registration:
    """A parsed registration."""
    return parse_registration(body(**members), TM, NOW,
                              f"urn:ngsi-ld:ContextSourceRegistration:{n}")


FULL = {
    "id": "urn:ngsi-ld:ContextSourceRegistration:full", "type": "ContextSourceRegistration",
    "registrationName": "cars", "description": "the city's cars",
    "information": [
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:1"},
                      {"type": ["Car", "Bus"], "idPattern": "^urn:ngsi-ld:Bus:"}],
         "propertyNames": ["speed", "brand"], "relationshipNames": ["owner"]},
        {"propertyNames": ["speed"]}],
    "tenant": "transport", "observationInterval": {"startAt": "2020-01-01T00:00:00Z",
                                                   "endAt": "2030-01-01T00:00:00Z"},
    "managementInterval": {"startAt": "2020-01-01T00:00:00Z"},
    "location": {"type": "Point", "coordinates": [-3.7, 40.4]},
    "observationSpace": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
    "operationSpace": {"type": "Point", "coordinates": [1, 1]},
    "expiresAt": "2099-01-01T00:00:00Z", "endpoint": "https://source.example.org/ngsi-ld",
    "contextSourceInfo": [{"key": "Authorization", "value": "Bearer x"}],
    "scope": ["/Madrid/Centro", "/Madrid"], "mode": "inclusive",
    "operations": ["federationOps", "updateEntity"], "refreshRate": "PT1M",
    "management": {"localOnly": True, "cacheDuration": "PT30S", "timeout": 2000,
                   "cooldown": 500},
    "provider": "EMT", "brand": {"type": "Property", "value": "seat"},
}


def test_every_member_round_trips() -> None:
    parsed = parse_registration(FULL, TM, NOW, "unused")
    assert from_record(to_record(parsed)) == parsed
    out = render(parsed, TM)
    assert out == {k: v for k, v in FULL.items()}


def test_defaults_and_sys_attrs() -> None:
    parsed = reg()
    assert parsed.effective_mode == "inclusive" and parsed.mode is None
    assert parsed.expanded_operations == GROUPS["federationOps"]
    out = render(parsed, TM, sys_attrs=True)
    assert out["mode"] == "inclusive" and "operations" not in out
    assert out["createdAt"] == out["modifiedAt"] == NOW
    assert render(parsed, TM)["id"] == "urn:ngsi-ld:ContextSourceRegistration:1"


def test_terms_are_expanded_with_the_context() -> None:
    parsed = reg(provider="EMT")
    assert parsed.information[0].entities is not None
    assert parsed.information[0].entities[0].types == [CAR]
    assert parsed.information[0].property_names == [SPEED]
    assert parsed.properties == {V + "provider": "EMT"}
    core = TermMap.compile([], core="1.9")
    assert render(parsed, core)["information"][0]["entities"][0]["type"] == CAR


def test_read_only_members_are_ignored() -> None:
    parsed = reg(status="ok", timesSent=3, createdAt="2020-01-01T00:00:00Z")
    assert parsed.properties == {} and parsed.source_status.times_sent == 0


BAD: list[tuple[str, dict[str, Any]]] = [
    ("no type", body(type=None)),
    ("wrong type", body(type="Registration")),
    ("no information", body(information=None)),
    ("empty information", body(information=[])),
    ("information not an array", body(information={"entities": [{"type": "Car"}]})),
    ("empty information item", body(information=[{}])),
    ("entities without type", body(information=[{"entities": [{"id": "urn:a:b"}]}])),
    ("empty entities", body(information=[{"entities": []}])),
    ("bad entity id", body(information=[{"entities": [{"type": "Car", "id": "no uri"}]}])),
    ("bad idPattern", body(information=[{"entities": [{"type": "Car", "idPattern": "("}]}])),
    ("bad property name", body(information=[{"propertyNames": ["a b"]}])),
    ("property and relationship", body(information=[{"propertyNames": ["owner"],
                                                     "relationshipNames": ["owner"]}])),
    ("no endpoint", body(endpoint=None)),
    ("endpoint not a URL", body(endpoint="not a url")),
    ("endpoint not http", body(endpoint="ftp://example.org")),
    ("endpoint bad port", body(endpoint="http://example.org:99999/")),
    ("bad mode", body(mode="sometimes")),
    ("unknown operation", body(operations=["flyEntity"])),
    ("empty operations", body(operations=[])),
    ("bad expiresAt", body(expiresAt="tomorrow")),
    ("past expiresAt", body(expiresAt="2000-01-01T00:00:00Z")),
    ("bad location", body(location={"type": "Point", "coordinates": [500, 1]})),
    ("bad interval", body(observationInterval={"endAt": "2020-01-01T00:00:00Z"})),
    ("reversed interval", body(managementInterval={"startAt": "2021-01-01T00:00:00Z",
                                                   "endAt": "2020-01-01T00:00:00Z"})),
    ("bad contextSourceInfo", body(contextSourceInfo=[{"key": "a b", "value": "x"}])),
    ("contextSourceInfo not pairs", body(contextSourceInfo={"key": "a", "value": "x"})),
    ("bad scope", body(scope="Madrid")),
    ("bad tenant", body(tenant="a tenant")),
    ("bad refreshRate", body(refreshRate="1 minute")),
    ("bad cacheDuration", body(management={"cacheDuration": 30})),
    ("negative timeout", body(management={"timeout": -1})),
    ("bad localOnly", body(management={"localOnly": "yes"})),
    ("bad registrationName", body(registrationName=42)),
    ("exclusive with a type only", body(mode="exclusive")),
    ("exclusive without attributes", body(mode="exclusive", information=[
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:1"}]}])),
    ("exclusive with idPattern", body(mode="exclusive", information=[
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:1", "idPattern": "Car"}],
         "propertyNames": ["speed"]}])),
    ("exclusive without entities", body(mode="exclusive", information=[
        {"propertyNames": ["speed"]}])),
    ("auxiliary writes", body(mode="auxiliary", operations=["updateEntity"])),
    ("auxiliary update group", body(mode="auxiliary", operations=["updateOps"])),
]


@pytest.mark.parametrize(("what", "payload"), BAD, ids=[b[0] for b in BAD])
def test_bad_payloads_are_bad_request_data(what: str, payload: dict[str, Any]) -> None:
    with pytest.raises(BadRequestData):
        parse_registration(payload, TM, NOW, "urn:ngsi-ld:ContextSourceRegistration:x")


def test_valid_modes() -> None:
    exclusive = reg(mode="exclusive", information=[
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:1"}], "propertyNames": ["speed"]}])
    assert exclusive.effective_mode == "exclusive"
    auxiliary = reg(mode="auxiliary", operations=["retrieveOps", "queryBatch"])
    assert auxiliary.supports("queryEntity") and not auxiliary.supports("updateEntity")
    assert reg(mode="auxiliary").effective_mode == "auxiliary"  # default operations


def test_patch_merges_and_deletes() -> None:
    base = reg(description="d", provider="EMT")
    patched = patch_registration(base, {"description": None, "provider": None, "mode": "redirect",
                                        "brand": "seat", "endpoint": "http://other.org"},
                                 TM, "2026-01-02T00:00:00Z")
    assert patched.description is None and patched.mode == "redirect"
    assert patched.properties == {BRAND: "seat"} and patched.endpoint == "http://other.org"
    assert patched.modified_at == "2026-01-02T00:00:00Z" and patched.created_at == NOW
    assert base.description == "d"  # the stored one is untouched
    for fragment in ({"id": "urn:other:1"}, {"type": "Subscription"}, {"endpoint": None},
                     {"information": None}, {"mode": "exclusive"}, [1]):
        with pytest.raises(BadRequestData):
            patch_registration(base, fragment, TM, NOW)


def test_operation_groups() -> None:
    assert len(OPERATIONS) == len(set(OPERATIONS)) == 43
    for name, members in GROUPS.items():
        assert members <= set(OPERATIONS), name
        assert name not in BITS
    assert len(GROUPS["federationOps"]) == 19 and len(GROUPS["redirectionOps"]) == 23
    assert expand_operations(["retrieveOps", "createEntity"]) == {
        "retrieveEntity", "queryEntity", "createEntity"}
    assert operations_mask(["retrieveEntity"]) == BITS["retrieveEntity"]
    assert "createEntity" not in expand_operations(None)


# --- matching --------------------------------------------------------------------------


def test_serves_by_type_id_pattern_and_attrs() -> None:
    by_type = reg(1)
    by_id = reg(2, information=[{"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:1"}]}])
    by_pattern = reg(3, information=[{"entities": [{"type": "Car", "idPattern": ":Car:[12]$"}],
                                      "relationshipNames": ["owner"]}])
    any_entity = reg(4, information=[{"propertyNames": ["brand"]}])
    op = "retrieveEntity"

    def who(entity_id: str | None, types: list[str] | None, attrs: list[str] | None) -> list[int]:
        return [n for n, r in enumerate((by_type, by_id, by_pattern, any_entity), 1)
                if serves(r, entity_id, types, attrs, op, NOW)]

    assert who("urn:ngsi-ld:Car:1", [CAR], None) == [1, 2, 3, 4]
    assert who("urn:ngsi-ld:Car:3", [CAR], None) == [1, 4]
    assert who("urn:ngsi-ld:Car:1", [BUS], None) == [4]
    assert who("urn:ngsi-ld:Car:2", None, [OWNER]) == [3]
    assert who("urn:ngsi-ld:Car:1", None, [OWNER]) == [2, 3]
    assert who(None, [CAR], [SPEED]) == [1, 2]
    assert who(None, None, [BRAND]) == [2, 4]
    assert who(None, None, None) == [1, 2, 3, 4]
    assert not serves(by_type, None, [CAR], None, "createEntity", NOW)
    assert not serves(reg(5, expiresAt="2026-06-01T00:00:00Z"), None, None, None, op,
                      "2026-07-01T00:00:00Z")


def test_filter_of_discovery_queries() -> None:
    target = reg(1, provider="EMT", location={"type": "Point", "coordinates": [1, 1]},
                 scope="/Madrid/Centro", information=[
                     {"entities": [{"type": "Car", "idPattern": "^urn:ngsi-ld:Car:"}],
                      "propertyNames": ["speed"]}])

    def matches(**parts: Any) -> bool:
        return RegistrationFilter(**parts).matches(target)

    cars, buses = parse_type_expr("Car", TM.expand), parse_type_expr("Bus", TM.expand)
    assert matches() and matches(selectors=(Selector(cars),))
    assert not matches(selectors=(Selector(buses),))
    assert matches(selectors=(Selector(None, ("urn:ngsi-ld:Car:9",)),))
    assert matches(selectors=(Selector(None, (), "Car:9"),))  # pattern against pattern
    assert matches(attrs=frozenset({SPEED})) and not matches(attrs=frozenset({BRAND}))
    assert matches(q=parse_q('provider=="EMT"', TM.expand))
    assert not matches(q=parse_q('provider=="ALSA"', TM.expand))
    assert matches(csf=parse_q('mode=="inclusive";endpoint~=".*example"', TM.expand))
    near = parse_geo_query("near;maxDistance==1000", "Point", "[1, 1.001]", None, TM.expand)
    far = parse_geo_query("near;maxDistance==10", "Point", "[2, 2]", None, TM.expand)
    assert matches(geo=near) and not matches(geo=far)
    from urbis.context.query.scope import parse_scope_q

    assert matches(scope=parse_scope_q("/Madrid/#")) and not matches(
        scope=parse_scope_q("/Sevilla"))


def test_conflicts_of_proxied_registrations() -> None:
    info = [{"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:1"}], "propertyNames": ["speed"]}]
    exclusive = reg(1, mode="exclusive", information=info)
    again = reg(2, mode="exclusive", information=info)
    other_attr = reg(3, mode="exclusive", information=[
        {"entities": [{"type": "Car", "id": "urn:ngsi-ld:Car:1"}], "propertyNames": ["brand"]}])
    redirect_all = reg(4, mode="redirect", information=[{"entities": [{"type": "Car"}]}])
    redirect_bus = reg(5, mode="redirect", information=[{"entities": [{"type": "Bus"}]}])
    inclusive = reg(6, information=info)
    assert conflicts(again, exclusive, NOW) and conflicts(exclusive, again, NOW)
    assert not conflicts(other_attr, exclusive, NOW)
    assert conflicts(redirect_all, exclusive, NOW) and conflicts(exclusive, redirect_all, NOW)
    assert not conflicts(redirect_bus, exclusive, NOW)
    assert not conflicts(redirect_all, reg(7, mode="redirect", information=[
        {"entities": [{"type": "Car"}]}]), NOW)
    assert not conflicts(inclusive, exclusive, NOW)
    expired = reg(8, mode="exclusive", information=info, expiresAt="2026-06-01T00:00:00Z")
    assert not conflicts(again, expired, "2026-07-01T00:00:00Z")


def test_change_reasons() -> None:
    cars = RegistrationFilter((Selector(parse_type_expr("Car", TM.expand)),))
    car, bus = reg(1), reg(1, information=[{"entities": [{"type": "Bus"}]}])
    assert change_reason(cars, None, car, NOW) == (NEWLY_MATCHING, car)
    assert change_reason(cars, car, car, NOW) == (UPDATED, car)
    assert change_reason(cars, car, bus, NOW) == (NO_LONGER_MATCHING, bus)
    assert change_reason(cars, bus, car, NOW) == (NEWLY_MATCHING, car)
    assert change_reason(cars, car, None, NOW) == (NO_LONGER_MATCHING, car)
    assert change_reason(cars, bus, None, NOW) is None


# --- property-based: the parser never fails with anything but a problem -------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "id", "idPattern", "entities", "propertyNames", "startAt",
                         "endAt", "key", "value", "localOnly", "timeout", "x"]), children,
        max_size=3), max_leaves=12)
_MEMBERS = st.sampled_from(["information", "endpoint", "mode", "operations", "location",
                            "expiresAt", "contextSourceInfo", "scope", "management",
                            "observationInterval", "tenant", "refreshRate", "extra"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_MEMBERS, _JSON, max_size=5))
def test_parser_answers_problems_only(members: dict[str, Any]) -> None:
    try:
        parsed = parse_registration(body(**members), TM, NOW, "urn:x:1")
    except NgsiError:
        return
    assert from_record(to_record(parsed)) == parsed
    render(parsed, TM)
