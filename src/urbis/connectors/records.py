"""Apply an EntityMapping to records, and read records from CSV, JSON and GeoJSON documents.

`map_records` converts a batch: every good record becomes a normalized NGSI-LD entity dict and
every bad one a RecordError (its index and reason); one bad row never stops the others.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from urbis.connectors.mapping import AttributeMapping, EntityMapping
from urbis.connectors.values import ValueConversionError, convert, is_missing, to_utc
from urbis.context.errors import NgsiError
from urbis.context.geo import validate_geometry

GEOMETRY_KEY = "__geometry__"
"""Record key under which `geojson_records` puts a feature's geometry."""

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_SLUG_DROP = re.compile(r"[^A-Za-z0-9._~-]+")


class RecordError(ValueError):
    """A record that does not map onto an entity."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"record {index}: {reason}")
        self.index = index
        self.reason = reason


@dataclass
class MappedBatch:
    """The entities made from a batch of records, and the records refused."""

    entities: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """A record's value by key, else by dotted path into nested objects (None if absent)."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def entity_id(mapping: EntityMapping, record: Mapping[str, Any]) -> str:
    """Fill the id template from the record (values slugged, percent-encoded or raw)."""

    def fill(m: re.Match[str]) -> str:
        value = lookup(record, m.group(1))
        if is_missing(value) or isinstance(value, dict | list):
            raise ValueConversionError(f"id column {m.group(1)!r} is empty")
        text = str(value).strip()
        if mapping.id_encoding == "slug":
            return _SLUG_DROP.sub("-", text).strip("-") or "-"
        return quote(text, safe="") if mapping.id_encoding == "quote" else text

    return _PLACEHOLDER.sub(fill, mapping.id_template)


def map_record(mapping: EntityMapping, record: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """One record as a normalized NGSI-LD entity; RecordError if it does not map."""
    try:
        entity: dict[str, Any] = {"id": entity_id(mapping, record), "type": mapping.entity_type}
        observed = _observed_at(mapping, record)
        for attr in mapping.attributes:
            item = _attribute(mapping, attr, record, observed)
            if item is not None:
                entity[attr.name] = item
        for name, value in mapping.static.items():
            entity.setdefault(name, {"type": "Property", "value": value})
        if mapping.location is not None:
            entity[mapping.location.attribute] = _location(mapping, record)
    except (ValueConversionError, NgsiError) as exc:
        raise RecordError(index, getattr(exc, "detail", None) or str(exc)) from None
    return entity


def map_records(mapping: EntityMapping, records: Iterable[Mapping[str, Any]]) -> MappedBatch:
    """Map every record, collecting the entities and the errors."""
    batch = MappedBatch()
    for index, record in enumerate(records):
        try:
            batch.entities.append(map_record(mapping, record, index))
        except RecordError as exc:
            batch.errors.append(exc)
    return batch


def _observed_at(mapping: EntityMapping, record: Mapping[str, Any]) -> str | None:
    if mapping.observed_at is None:
        return None
    value = lookup(record, mapping.observed_at)
    if is_missing(value):
        raise ValueConversionError(f"observedAt column {mapping.observed_at!r} is empty")
    return to_utc(value, mapping.timezone)


def _attribute(
    mapping: EntityMapping, attr: AttributeMapping, record: Mapping[str, Any], observed: str | None
) -> dict[str, Any] | None:
    if attr.expression is not None:
        raw = attr.expression.evaluate(record)
    else:
        raw = lookup(record, attr.source or attr.name)
    if is_missing(raw):
        if attr.required:
            raise ValueConversionError(f"attribute {attr.name!r} is required but empty")
        return None
    try:
        value = convert(raw, attr.type, mapping.timezone)
    except ValueConversionError as exc:
        raise ValueConversionError(f"attribute {attr.name!r}: {exc}") from None
    if attr.object_template is not None:
        target = attr.object_template.replace("{value}", str(value))
        item: dict[str, Any] = {"type": "Relationship", "object": target}
    else:
        item = {"type": "Property", "value": value}
        if attr.unit_code:
            item["unitCode"] = attr.unit_code
    if observed is not None and attr.observed:
        item["observedAt"] = observed
    if attr.dataset_id:
        item["datasetId"] = attr.dataset_id
    return item


def _location(mapping: EntityMapping, record: Mapping[str, Any]) -> dict[str, Any]:
    spec = mapping.location
    assert spec is not None
    if spec.geometry:
        geometry = validate_geometry(record.get(GEOMETRY_KEY))
    else:
        lat = convert(lookup(record, spec.latitude or ""), "number")
        lon = convert(lookup(record, spec.longitude or ""), "number")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueConversionError(f"coordinates out of range: {lat}, {lon}")
        geometry = {"type": "Point", "coordinates": [lon, lat]}
    return {"type": "GeoProperty", "value": geometry}


def csv_records(text: str, delimiter: str = ",") -> Iterator[dict[str, str]]:
    """The rows of CSV text (header line first) as dicts."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), delimiter=delimiter)
    for row in reader:
        yield {k.strip(): v for k, v in row.items() if isinstance(k, str)}


def json_records(data: Any, path: str | None = None) -> list[Mapping[str, Any]]:
    """The records of a JSON document: a list of objects, optionally under a dotted `path`."""
    if path:
        data = lookup(data, path) if isinstance(data, Mapping) else None
    if isinstance(data, Mapping) and data.get("type") == "FeatureCollection":
        return list(geojson_records(data))
    if isinstance(data, Mapping):
        return [data]
    if not isinstance(data, list):
        raise ValueError("no list of records found in the JSON document")
    return [item if isinstance(item, Mapping) else {"value": item} for item in data]


def geojson_records(collection: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Each feature's properties, plus its geometry under GEOMETRY_KEY and `id` if it has one."""
    for feature in collection.get("features") or []:
        if not isinstance(feature, Mapping):
            continue
        properties = feature.get("properties")
        record = dict(properties) if isinstance(properties, Mapping) else {}
        record[GEOMETRY_KEY] = feature.get("geometry")
        if "id" in feature and "id" not in record:
            record["id"] = feature["id"]
        yield record
