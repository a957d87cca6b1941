"""The broker's internal entity: expanded IRIs, attributes as lists of instances.

Stored layout (shared by every backend and by the query compilers):

- `Entity.types`: expanded type IRIs; `Entity.scopes`: scope strings or None.
- `Entity.attrs`: attribute IRI -> list of instances (one per datasetId; the default
  instance has no "datasetId" key). An instance is a dict in normalized form with the keys:
  "type" (one of ATTRIBUTE_TYPES), its value key (VALUE_KEYS[type]: "value", "object",
  "languageMap", "vocab", "json", "valueList", "objectList"), optional "observedAt",
  "unitCode", "datasetId", "objectType", "createdAt", "modifiedAt", and sub-attributes
  keyed by their expanded IRI, each a single instance dict of the same shape.
- VocabProperty "vocab" values and Relationship "objectType" are stored expanded.
- GeoProperty values are GeoJSON geometry objects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

PROPERTY = "Property"
RELATIONSHIP = "Relationship"
GEO_PROPERTY = "GeoProperty"
LANGUAGE_PROPERTY = "LanguageProperty"
VOCAB_PROPERTY = "VocabProperty"
JSON_PROPERTY = "JsonProperty"
LIST_PROPERTY = "ListProperty"
LIST_RELATIONSHIP = "ListRelationship"

VALUE_KEYS: dict[str, str] = {
    PROPERTY: "value",
    RELATIONSHIP: "object",
    GEO_PROPERTY: "value",
    LANGUAGE_PROPERTY: "languageMap",
    VOCAB_PROPERTY: "vocab",
    JSON_PROPERTY: "json",
    LIST_PROPERTY: "valueList",
    LIST_RELATIONSHIP: "objectList",
}
ATTRIBUTE_TYPES = frozenset(VALUE_KEYS)

# Keys of an attribute instance that are not sub-attributes.
INSTANCE_KEYS = frozenset(
    {
        "type",
        "value",
        "object",
        "languageMap",
        "vocab",
        "json",
        "valueList",
        "objectList",
        "objectType",
        "observedAt",
        "unitCode",
        "datasetId",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "lang",
    }
)
SYS_ATTRS = frozenset({"createdAt", "modifiedAt", "deletedAt"})

# Entity-level members that are not attributes.
ENTITY_KEYS = frozenset({"id", "@id", "type", "@type", "scope", "@context", "createdAt",
                         "modifiedAt", "deletedAt"})

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
LOCATION = NGSI_LD + "location"
OBSERVATION_SPACE = NGSI_LD + "observationSpace"
OPERATION_SPACE = NGSI_LD + "operationSpace"
GEO_CORE_ATTRS = frozenset({LOCATION, OBSERVATION_SPACE, OPERATION_SPACE})

Instance = dict[str, Any]


_second: list[Any] = [-1, ""]


def now_iso() -> str:
    """The current UTC time as an NGSI-LD DateTime with microseconds."""
    now = time.time()
    whole = int(now)
    if whole != _second[0]:  # strftime once per second, not once per call
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


@dataclass(slots=True)
class Entity:
    """One NGSI-LD entity in internal (expanded) form."""

    id: str
    types: list[str]
    attrs: dict[str, list[Instance]] = field(default_factory=dict)
    scopes: list[str] | None = None
    created_at: str | None = None
    modified_at: str | None = None

    def instance(self, attr: str, dataset_id: str | None = None) -> Instance | None:
        """The instance of an attribute with the given datasetId (None: the default one)."""
        for inst in self.attrs.get(attr, ()):
            if inst.get("datasetId") == dataset_id:
                return inst
        return None

    def geo_values(self) -> list[tuple[str, Any]]:
        """(attribute IRI, GeoJSON geometry) for every GeoProperty instance."""
        out: list[tuple[str, Any]] = []
        for name, instances in self.attrs.items():
            for inst in instances:
                if inst.get("type") == GEO_PROPERTY and isinstance(inst.get("value"), dict):
                    out.append((name, inst["value"]))
        return out
