"""Declarative mappings from departmental records (CSV rows, JSON objects, GeoJSON features) to
NGSI-LD entities.

A mapping names the entity type, an id template (`urn:ngsi-ld:OffStreetParking:{Name}`), the
attributes (source column or derived expression, value type, unitCode, Relationship target), the
column holding the observation time and where the location comes from. It is read from a dict
(JSON or TOML text alike); see `EntityMapping.from_dict` and docs/devices.md for the format.
`urbis.connectors.records` applies a mapping to CSV rows, JSON objects and GeoJSON features.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from urbis.connectors.values import VALUE_TYPES
from urbis.context.errors import BadRequestData
from urbis.context.expressions import Expression, ExpressionError, compile_expression

ID_ENCODINGS = ("slug", "quote", "raw")


class MappingError(BadRequestData):
    """A mapping definition that is not valid."""


@dataclass(frozen=True, slots=True)
class AttributeMapping:
    """One attribute: where its value comes from and how it is typed."""

    name: str
    source: str | None = None
    expression: Expression | None = None
    type: str = "text"
    object_template: str | None = None
    unit_code: str | None = None
    observed: bool = True
    required: bool = False
    dataset_id: str | None = None

    @property
    def is_relationship(self) -> bool:
        """Whether the attribute is a Relationship (it has an object template)."""
        return self.object_template is not None


@dataclass(frozen=True, slots=True)
class LocationMapping:
    """Where the location comes from: latitude/longitude columns or the feature's geometry."""

    latitude: str | None = None
    longitude: str | None = None
    geometry: bool = False
    attribute: str = "location"


@dataclass(frozen=True, slots=True)
class EntityMapping:
    """How to turn one record into one NGSI-LD entity."""

    entity_type: str
    id_template: str
    attributes: tuple[AttributeMapping, ...]
    observed_at: str | None = None
    timezone: tzinfo = UTC
    location: LocationMapping | None = None
    static: Mapping[str, Any] = field(default_factory=dict)
    id_encoding: str = "slug"

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> EntityMapping:
        """Read a mapping from its dict form (keys as in docs/devices.md)."""
        if not isinstance(spec, Mapping):
            raise MappingError("a mapping is an object")
        unknown = set(spec) - {
            "type", "id", "attributes", "observedAt", "timezone", "location", "static",
            "idEncoding",
        }  # fmt: skip
        if unknown:
            raise MappingError(f"unknown mapping keys: {', '.join(sorted(unknown))}")
        entity_type, template = spec.get("type"), spec.get("id")
        if not isinstance(entity_type, str) or not entity_type:
            raise MappingError("`type` (the entity type) is required")
        if not isinstance(template, str) or "{" not in template:
            raise MappingError("`id` must be a template naming at least one {column}")
        encoding = spec.get("idEncoding", "slug")
        if encoding not in ID_ENCODINGS:
            raise MappingError(f"`idEncoding` must be one of {', '.join(ID_ENCODINGS)}")
        static = spec.get("static", {})
        if not isinstance(static, Mapping):
            raise MappingError("`static` must be an object of attribute values")
        return cls(
            entity_type=entity_type,
            id_template=template,
            attributes=_attributes(spec.get("attributes")),
            observed_at=_optional_text(spec, "observedAt"),
            timezone=_zone(spec.get("timezone")),
            location=_location(spec.get("location")),
            static=dict(static),
            id_encoding=encoding,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> EntityMapping:
        """Read a mapping from JSON text."""
        try:
            return cls.from_dict(json.loads(text))
        except (ValueError, RecursionError) as exc:
            raise MappingError(f"mapping is not valid JSON: {exc}") from None

    @classmethod
    def from_toml(cls, text: str) -> EntityMapping:
        """Read a mapping from TOML text (attributes as a table of tables)."""
        try:
            return cls.from_dict(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise MappingError(f"mapping is not valid TOML: {exc}") from None


def _optional_text(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise MappingError(f"`{key}` must be a non-empty text")
    return value


def _zone(name: Any) -> tzinfo:
    if name is None:
        return UTC
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"unknown time zone {name!r}") from None


def _location(spec: Any) -> LocationMapping | None:
    if spec is None:
        return None
    if spec == "geometry" or (isinstance(spec, Mapping) and spec.get("geometry") is True):
        name = spec.get("attribute", "location") if isinstance(spec, Mapping) else "location"
        return LocationMapping(geometry=True, attribute=name)
    if not isinstance(spec, Mapping) or not spec.get("latitude") or not spec.get("longitude"):
        raise MappingError('`location` is "geometry" or {latitude, longitude} column names')
    return LocationMapping(
        latitude=str(spec["latitude"]),
        longitude=str(spec["longitude"]),
        attribute=str(spec.get("attribute", "location")),
    )


def _attributes(spec: Any) -> tuple[AttributeMapping, ...]:
    if not isinstance(spec, Mapping) or not spec:
        raise MappingError("`attributes` must map attribute names to their sources")
    return tuple(_attribute(str(name), item) for name, item in spec.items())


def _attribute(name: str, spec: Any) -> AttributeMapping:
    if isinstance(spec, str):
        spec = {"source": spec}
    if not isinstance(spec, Mapping):
        raise MappingError(f"attribute {name!r}: a column name or an object")
    unknown = set(spec) - {
        "source", "expression", "type", "object", "unitCode", "observed", "required", "datasetId",
    }  # fmt: skip
    if unknown:
        raise MappingError(f"attribute {name!r}: unknown keys {', '.join(sorted(unknown))}")
    source, expression = spec.get("source"), spec.get("expression")
    if (source is None) == (expression is None):
        raise MappingError(f"attribute {name!r}: give exactly one of `source` and `expression`")
    kind = spec.get("type", "text")
    if kind not in VALUE_TYPES:
        raise MappingError(f"attribute {name!r}: type must be one of {', '.join(VALUE_TYPES)}")
    target = spec.get("object")
    if target is not None and (not isinstance(target, str) or "{value}" not in target):
        raise MappingError(f"attribute {name!r}: `object` is a template holding {{value}}")
    try:
        compiled = compile_expression(str(expression)) if expression is not None else None
    except ExpressionError as exc:
        raise MappingError(f"attribute {name!r}: {exc.detail}") from None
    return AttributeMapping(
        name=name,
        source=str(source) if source is not None else None,
        expression=compiled,
        type=kind,
        object_template=target,
        unit_code=_optional_text(spec, "unitCode"),
        observed=bool(spec.get("observed", True)),
        required=bool(spec.get("required", False)),
        dataset_id=_optional_text(spec, "datasetId"),
    )
