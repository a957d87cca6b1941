"""The application/geo+json representation of entities (ETSI GS CIM 009 V1.8.1 clause 4.5.16/17).

Input entities are already compacted into their NGSI-LD JSON form (normalized, concise or
simplified). Each becomes a GeoJSON Feature (IETF RFC 7946 clause 3.2):

- "id": the entity id; "type": "Feature";
- "geometry": the value of the GeoProperty named by the `geometryProperty` parameter
  (default "location"), or null when the entity has no such GeoProperty;
- "properties": every other member of the entity ("type", "scope", system attributes and all
  attributes, the geometry attribute included) in the representation asked for;
- "@context": on a single Feature, the entity's own @context; in a FeatureCollection, once at
  the top level and never on the Features.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

GEOMETRY_TYPES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
     "GeometryCollection"}
)
_NOT_PROPERTIES = frozenset({"id", "@id", "@context"})


def to_feature(
    entity: dict[str, Any], geometry_property: str = "location", key_values: bool = False
) -> dict[str, Any]:
    """One compacted entity as a GeoJSON Feature (with its @context, when it has one)."""
    feature = _feature(entity, geometry_property, key_values)
    if "@context" in entity:
        feature["@context"] = entity["@context"]
    return feature


def to_feature_collection(
    entities: Iterable[dict[str, Any]],
    geometry_property: str = "location",
    context: Any = None,
    key_values: bool = False,
) -> dict[str, Any]:
    """Compacted entities as a GeoJSON FeatureCollection; `context` (if any) goes on top."""
    collection: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [_feature(entity, geometry_property, key_values) for entity in entities],
    }
    if context is not None:
        collection["@context"] = context
    return collection


def geometry_of(attribute: Any, key_values: bool = False) -> dict[str, Any] | None:
    """The GeoJSON geometry held by a compacted attribute, or None if it holds none."""
    if isinstance(attribute, list):
        return _first_instance(attribute, key_values)
    if not isinstance(attribute, dict):
        return None
    if key_values and isinstance(attribute.get("dataset"), dict):
        return _from_dataset(attribute["dataset"])
    kind = attribute.get("type")
    if kind in GEOMETRY_TYPES:
        return attribute  # simplified, or concise with the GeoJSON object as the value
    if key_values:
        return None
    if kind == "GeoProperty" or (kind is None and "value" in attribute):
        value = attribute.get("value")
        if isinstance(value, dict) and value.get("type") in GEOMETRY_TYPES:
            return value
    return None


def _feature(entity: dict[str, Any], geometry_property: str, key_values: bool) -> dict[str, Any]:
    return {
        "id": entity.get("id", entity.get("@id")),
        "type": "Feature",
        "geometry": geometry_of(entity.get(geometry_property), key_values),
        "properties": {k: v for k, v in entity.items() if k not in _NOT_PROPERTIES},
    }


def _first_instance(instances: list[Any], key_values: bool) -> dict[str, Any] | None:
    """The default instance's geometry (no datasetId) if any, else the first one found."""
    ordered = sorted(instances, key=lambda i: isinstance(i, dict) and "datasetId" in i)
    for instance in ordered:
        geometry = geometry_of(instance, key_values)
        if geometry is not None:
            return geometry
    return None


def _from_dataset(dataset: dict[str, Any]) -> dict[str, Any] | None:
    """Simplified multi-instance form {"dataset": {"@none": geometry, datasetId: ...}}."""
    ordered = sorted(dataset.items(), key=lambda item: item[0] != "@none")
    for _, value in ordered:
        geometry = geometry_of(value, key_values=True)
        if geometry is not None:
            return geometry
    return None
