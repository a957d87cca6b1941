"""The application/geo+json representation of compacted entities."""

from __future__ import annotations

from typing import Any

from urbis.context.geojson import geometry_of, to_feature, to_feature_collection

CTX = "https://example.org/context.jsonld"
HERE = {"type": "Point", "coordinates": [13.3986, 52.5547]}
THERE = {"type": "Point", "coordinates": [11.1111, 11.1111]}


def building(**extra: Any) -> dict[str, Any]:
    return {
        "id": "urn:ngsi-ld:Building:1",
        "type": "Building",
        "name": {"type": "Property", "value": "Tower"},
        "location": {"type": "GeoProperty", "value": HERE},
        "observationSpace": {"type": "GeoProperty", "value": THERE},
        **extra,
    }


def test_normalized_entity_becomes_a_feature() -> None:
    entity = building(**{"@context": CTX})
    assert to_feature(entity) == {
        "id": "urn:ngsi-ld:Building:1",
        "type": "Feature",
        "geometry": HERE,
        "properties": {
            "type": "Building",
            "name": {"type": "Property", "value": "Tower"},
            "location": {"type": "GeoProperty", "value": HERE},
            "observationSpace": {"type": "GeoProperty", "value": THERE},
        },
        "@context": CTX,
    }


def test_geometry_property_selects_another_geoproperty() -> None:
    assert to_feature(building(), "observationSpace")["geometry"] == THERE


def test_missing_or_non_geo_geometry_property_gives_null_geometry() -> None:
    assert to_feature(building(), "operationSpace")["geometry"] is None
    assert to_feature(building(), "name")["geometry"] is None
    rel = building(location={"type": "Relationship", "object": "urn:x"})
    assert to_feature(rel)["geometry"] is None
    assert "@context" not in to_feature(building())


def test_simplified_entity_feature() -> None:
    simple = {"id": "urn:x:1", "type": "Building", "name": "Tower", "location": HERE,
              "scope": "/Madrid"}
    feature = to_feature(simple, key_values=True)
    assert feature["geometry"] == HERE
    assert feature["properties"] == {"type": "Building", "name": "Tower", "location": HERE,
                                     "scope": "/Madrid"}


def test_concise_forms() -> None:
    assert geometry_of({"value": HERE, "observedAt": "2024-01-01T00:00:00Z"}) == HERE
    assert geometry_of(HERE) == HERE
    assert geometry_of({"type": "Property", "value": HERE}) is None
    assert geometry_of({"value": {"type": "Circle"}}) is None
    assert geometry_of("POINT (1 2)") is None


def test_multi_instance_prefers_the_default_instance() -> None:
    instances = [
        {"type": "GeoProperty", "value": THERE, "datasetId": "urn:ds:1"},
        {"type": "GeoProperty", "value": HERE},
    ]
    assert geometry_of(instances) == HERE
    assert geometry_of(instances[:1]) == THERE
    assert geometry_of({"dataset": {"urn:ds:1": THERE, "@none": HERE}}, key_values=True) == HERE
    assert geometry_of({"dataset": {"urn:ds:1": THERE}}, key_values=True) == THERE
    assert geometry_of([THERE, HERE], key_values=True) == THERE


def test_feature_collection_puts_context_on_top_only() -> None:
    entities = [building(**{"@context": CTX}), {"id": "urn:x:2", "type": "Vehicle",
                                                  "@context": CTX}]
    collection = to_feature_collection(entities, "location", CTX)
    assert collection["type"] == "FeatureCollection"
    assert collection["@context"] == CTX
    assert [f["id"] for f in collection["features"]] == ["urn:ngsi-ld:Building:1", "urn:x:2"]
    assert [f["geometry"] for f in collection["features"]] == [HERE, None]
    assert all("@context" not in f and "@context" not in f["properties"]
               for f in collection["features"])


def test_empty_feature_collection_without_context() -> None:
    assert to_feature_collection([]) == {"type": "FeatureCollection", "features": []}
