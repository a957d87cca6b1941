"""The pure part of distributed operations: Via, coverage, merging, sharing out writes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urbis.context.errors import BadRequestData
from urbis.context.federation import (
    Hop,
    SourceWarning,
    covered_attrs,
    parse_via,
    restrict,
    source_names,
)
from urbis.context.federation_merge import merge_lists, merge_parts, newer, order_entities, strip
from urbis.context.federation_parse import relayed_entity
from urbis.context.federation_split import split_write
from urbis.context.jsonld import core_term_map
from urbis.context.model import Entity
from urbis.context.registration import EntityInfo, Registration, RegistrationInfo

NS = "https://uri.etsi.org/ngsi-ld/default-context/"
LAMP = "urn:ngsi-ld:Streetlight:1"
T1, T2 = "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"


def reg(mode: str | None = None, attrs: list[str] | None = None, entity_id: str | None = None,
        endpoint: str = "http://dept:1026", **props: Any) -> Registration:
    """A registration of Streetlights (optionally one id, some attributes)."""
    info = RegistrationInfo([EntityInfo([NS + "Streetlight"], entity_id)],
                            [NS + a for a in attrs] if attrs is not None else None)
    return Registration("urn:r", [info], endpoint, mode=mode, properties=props)


def inst(value: Any, at: str | None = None, observed: str | None = None,
         dataset: str | None = None) -> dict[str, Any]:
    """A Property instance."""
    out: dict[str, Any] = {"type": "Property", "value": value}
    if at:
        out["modifiedAt"] = at
    if observed:
        out["observedAt"] = observed
    if dataset:
        out["datasetId"] = dataset
    return out


def lamp(**attrs: list[dict[str, Any]]) -> Entity:
    """A Streetlight with these attributes (short names)."""
    return Entity(LAMP, [NS + "Streetlight"], {NS + k: v for k, v in attrs.items()})


def test_via_chains_and_loops() -> None:
    hop = parse_via("1.1 city:1026, 1.0 dept-a (urbis)")
    assert hop.chain == ("city:1026", "dept-a") and not hop.local
    assert hop.seen(["dept-a"]) and not hop.seen(["dept-b"])
    assert hop.via("dept-b") == "1.1 city:1026, 1.0 dept-a (urbis), 1.1 dept-b"
    assert parse_via(None).via("me") == "1.1 me"
    assert parse_via(None, local=True).local and parse_via("", True) == Hop(local=True)
    assert source_names(reg(endpoint="http://10.0.0.7:1026/ngsi-ld/v1")) == {"10.0.0.7:1026"}
    aliased = reg(**{"https://uri.etsi.org/ngsi-ld/contextSourceAlias": "lights"})
    assert source_names(aliased) == {"dept:1026", "lights"}


def test_warning_header_is_one_safe_line() -> None:
    warning = SourceWarning(199, "urn:r", 'say "no"\nnow, é')
    assert warning.header() == "199 urn:r \"say 'no' now, ?\""


def test_what_a_registration_covers() -> None:
    assert covered_attrs(reg(), LAMP, None) is None
    assert covered_attrs(reg(attrs=["power"]), LAMP, [NS + "Streetlight"]) == {NS + "power"}
    assert covered_attrs(reg(attrs=["power"]), LAMP, [NS + "Bench"]) == frozenset()
    assert covered_attrs(reg(entity_id="urn:x"), LAMP, None) == frozenset()
    kept = restrict(lamp(power=[inst(1)], colour=[inst("c")]), reg(attrs=["power"]))
    assert kept is not None and list(kept.attrs) == [NS + "power"]
    assert restrict(lamp(), reg(entity_id="urn:x")) is None


def test_the_most_recent_instance_wins_per_dataset() -> None:
    assert newer(inst(1, at=T1), inst(2, at=T2)) and not newer(inst(1, at=T2), inst(2, at=T1))
    assert newer(inst(1, at=T2, observed=T1), inst(2, at=T1, observed=T2))  # observedAt first
    assert not newer(inst(1), inst(2, at=T2))  # nothing to compare: keep the one there
    local = lamp(power=[inst(1, at=T2), inst(5, at=T1, dataset="urn:d")])
    source = lamp(power=[inst(2, at=T1), inst(6, at=T2, dataset="urn:d"),
                         inst(7, at=T1, dataset="urn:e")], colour=[inst("c")])
    merged = merge_parts(local, [source])
    assert merged is not None
    assert [(i["value"], i.get("datasetId")) for i in merged.attrs[NS + "power"]] == [
        (1, None), (6, "urn:d"), (7, "urn:e")]
    assert NS + "colour" in merged.attrs


def test_auxiliary_parts_only_fill_gaps() -> None:
    merged = merge_parts(lamp(power=[inst(1, at=T1)]), [],
                         [lamp(power=[inst(9, at=T2)], colour=[inst("a", at=T1)]),
                          lamp(colour=[inst("b", at=T2)])])
    assert merged is not None
    assert merged.attrs[NS + "power"][0]["value"] == 1
    assert merged.attrs[NS + "colour"][0]["value"] == "b"  # among auxiliaries: most recent
    assert merge_parts(None, [], []) is None


def test_lists_merge_by_id_and_order_like_the_store() -> None:
    a, b = Entity("urn:b", ["T"], {NS + "n": [inst(2)]}), Entity("urn:a", ["T"], {})
    c = Entity("urn:c", ["T"], {NS + "n": [inst(1)]})
    merged = merge_lists([a], [[b, Entity("urn:b", ["U"], {NS + "m": [inst(0)]})], [c]])
    assert sorted(merged) == ["urn:a", "urn:b", "urn:c"] and merged["urn:b"].types == ["T", "U"]
    ordered = order_entities(list(merged.values()), [(NS + "n", True)])
    assert [e.id for e in ordered] == ["urn:b", "urn:c", "urn:a"]  # no value: last
    assert [e.id for e in order_entities(list(merged.values()), [])] == [
        "urn:a", "urn:b", "urn:c"]
    assert strip(lamp(power=[inst(1)]), None) is None
    kept = strip(lamp(power=[inst(1)], dim=[inst(2)]), frozenset({NS + "dim"}))
    assert kept is not None and list(kept.attrs) == [NS + "power"]


def test_writes_are_shared_out_by_mode() -> None:
    attrs = [NS + "power", NS + "switch"]
    exclusive = reg("exclusive", ["switch"], LAMP)
    inclusive = reg(None, ["power"])
    plan = split_write(attrs, [exclusive, inclusive], LAMP, [NS + "Streetlight"],
                       entity_level=False)
    assert plan.local_attrs == {NS + "power"} and plan.local_entity
    assert [(p.reg.mode, p.attrs) for p in plan.parts] == [
        ("exclusive", {NS + "switch"}), (None, {NS + "power"})]
    redirect = split_write(attrs, [reg("redirect")], LAMP, None, entity_level=True)
    assert not redirect.local_entity and not redirect.runs_locally(True)
    delete = split_write(None, [exclusive, reg("redirect")], LAMP, None, entity_level=True)
    assert [p.attrs for p in delete.parts] == [None, None] and not delete.local_entity
    untouched = split_write([NS + "power"], [exclusive], LAMP, None, entity_level=False)
    assert untouched.parts == [] and untouched.local_attrs == {NS + "power"}


def test_relayed_entities_keep_their_shape() -> None:
    tm = core_term_map()
    entity = relayed_entity({
        "id": LAMP, "type": "Streetlight", "createdAt": T1, "modifiedAt": T2,
        "power": [inst(1, at=T1), inst(2, at=T2, dataset="urn:d")],
        "dimming": {"type": "VocabProperty", "vocab": "eco"},
        "owner": {"type": "Relationship", "object": "urn:o", "objectType": "Person",
                  "since": inst(2020)},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 2]}},
    }, tm)
    assert entity.types == [NS + "Streetlight"] and entity.modified_at == T2
    assert len(entity.attrs[NS + "power"]) == 2
    assert entity.attrs[NS + "dimming"][0]["vocab"] == NS + "eco"
    owner = entity.attrs[NS + "owner"][0]
    assert owner["objectType"] == NS + "Person" and owner[NS + "since"]["value"] == 2020


@pytest.mark.parametrize("body", [
    [], {"type": "T"}, {"id": "not a uri", "type": "T"}, {"id": "urn:x", "type": []},
    {"id": "urn:x", "type": "T", "p": 3}, {"id": "urn:x", "type": "T", "p": []},
    {"id": "urn:x", "type": "T", "p": {"type": "Nope", "value": 1}},
    {"id": "urn:x", "type": "T", "p": {"type": "Property"}},
    {"id": "urn:x", "type": "T", "p": {"type": "Relationship", "object": 3}},
    {"id": "urn:x", "type": "T", "p": {"type": "LanguageProperty", "languageMap": "en"}},
    {"id": "urn:x", "type": "T", "p": {"type": "GeoProperty", "value": [1, 2]}},
    {"id": "urn:x", "type": "T", "p": {"type": "Property", "value": 1, "sub": 5}},
])
def test_malformed_source_entities_are_refused(body: Any) -> None:
    with pytest.raises(BadRequestData):
        relayed_entity(body, core_term_map())


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["id", "type", "value", "object", "p", "q",
                                          "observedAt", "languageMap", "datasetId"]),
                         inner, max_size=4), max_leaves=20)


@given(_JSON)
def test_any_json_from_a_source_is_an_entity_or_bad_request_data(body: Any) -> None:
    try:
        relayed_entity(body, core_term_map())
    except BadRequestData:
        pass
